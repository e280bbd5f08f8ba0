"""Private workteams: the emulated operations, and the engine creating or adopting one."""

from __future__ import annotations

from typing import Any

import pytest

from smrun import Outcome, Runner, Settings, StatusChanged, Submitted
from smrun.emulator import Emulator, FakeClock
from smrun.handlers.workteam import KIND, adopt
from smrun.types import JobError, Phase
from tests.helpers import emulator_config, error_of

POOL = "us-east-1_AbCdEf123"
CLIENT = "4ab1cdef2ghij3klmno4pqrs5t"
START = FakeClock().now
ARN_PREFIX = "arn:aws:sagemaker:us-east-1:123456789012:workteam/private-crowd/"


def cognito(group: str, *, pool: str = POOL, client: str = CLIENT) -> dict[str, Any]:
    return {"CognitoMemberDefinition": {"UserPool": pool, "UserGroup": group, "ClientId": client}}


def workteam_request(name: str | None = "labelers", *groups: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "Description": "People who label our images",
        "MemberDefinitions": [cognito(g) for g in groups or ("labelers",)],
        **extra,
    }
    if name is not None:
        body["WorkteamName"] = name
    return body


# --- the emulator -----------------------------------------------------------


async def test_created_team_is_described_inside_a_workteam_member(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    created = await sagemaker.create_workteam(
        **workteam_request(
            "Labelers",
            "team-a",
            "team-b",
            NotificationConfiguration={
                "NotificationTopicArn": "arn:aws:sns:us-east-1:123456789012:new-tasks"
            },
            Tags=[{"Key": "project", "Value": "gt"}],
        )
    )
    assert created["WorkteamArn"] == ARN_PREFIX + "labelers"

    fake_clock.advance(30)
    team = (await sagemaker.describe_workteam(WorkteamName="labelers"))["Workteam"]
    assert team["WorkteamName"] == "Labelers"
    assert team["WorkteamArn"] == created["WorkteamArn"]
    assert team["WorkforceArn"] == "arn:aws:sagemaker:us-east-1:123456789012:workforce/default"
    assert [m["CognitoMemberDefinition"]["UserGroup"] for m in team["MemberDefinitions"]] == [
        "team-a",
        "team-b",
    ]
    assert team["NotificationConfiguration"]["NotificationTopicArn"].endswith(":new-tasks")
    assert team["SubDomain"].endswith(".labeling.us-east-1.sagemaker.aws")
    assert team["CreateDate"].timestamp() == START
    assert team["LastUpdatedDate"].timestamp() == START
    tags = await sagemaker.list_tags(ResourceArn=team["WorkteamArn"])
    assert tags["Tags"] == [{"Key": "project", "Value": "gt"}]


async def test_teams_of_one_workforce_share_its_labeling_portal(
    fake_emulator: Emulator, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_workteam(**workteam_request("first", "a"))
    await sagemaker.create_workteam(**workteam_request("second", "b"))
    first = (await sagemaker.describe_workteam(WorkteamName="first"))["Workteam"]
    second = (await sagemaker.describe_workteam(WorkteamName="second"))["Workteam"]
    assert first["SubDomain"] == second["SubDomain"]


async def test_duplicate_name_is_resource_in_use(fake_emulator: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_workteam(**workteam_request("team"))
    code, message = await error_of(sagemaker.create_workteam, **workteam_request("TEAM"))
    assert code == "ResourceInUse"
    assert "already exists" in message


async def test_members_must_share_one_identity_provider(
    fake_emulator: Emulator, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    mixed = workteam_request("mixed")
    mixed["MemberDefinitions"].append({"OidcMemberDefinition": {"Groups": ["g"]}})
    code, message = await error_of(sagemaker.create_workteam, **mixed)
    assert code == "ValidationException" and "same identity provider" in message

    two_pools = workteam_request("pools")
    two_pools["MemberDefinitions"].append(cognito("other", pool="us-east-1_Zz9"))
    code, _ = await error_of(sagemaker.create_workteam, **two_pools)
    assert code == "ValidationException"

    both = {"MemberDefinitions": [{**cognito("a"), "OidcMemberDefinition": {"Groups": ["g"]}}]}
    code, message = await error_of(
        sagemaker.create_workteam, **{**workteam_request("both"), **both}
    )
    assert code == "ValidationException" and "exactly one" in message

    # the first team fixes the workforce's user pool
    await sagemaker.create_workteam(**workteam_request("first"))
    other_pool = workteam_request("second")
    other_pool["MemberDefinitions"] = [cognito("x", pool="us-east-1_Other1")]
    code, message = await error_of(sagemaker.create_workteam, **other_pool)
    assert code == "ValidationException" and POOL in message
    teams = await sagemaker.list_workteams()
    assert [t["WorkteamName"] for t in teams["Workteams"]] == ["first"]


async def test_update_changes_members_and_the_update_date(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    await sagemaker.create_workteam(**workteam_request("team", "a"))
    fake_clock.advance(60)
    updated = await sagemaker.update_workteam(
        WorkteamName="team", MemberDefinitions=[cognito("a"), cognito("b")], Description="More"
    )
    team = updated["Workteam"]
    assert len(team["MemberDefinitions"]) == 2 and team["Description"] == "More"
    assert team["LastUpdatedDate"].timestamp() == START + 60
    assert team["CreateDate"].timestamp() == START
    described = (await sagemaker.describe_workteam(WorkteamName="team"))["Workteam"]
    assert described["MemberDefinitions"] == team["MemberDefinitions"]


async def test_delete_removes_the_team(fake_emulator: Emulator, aws_client: Any) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    created = await sagemaker.create_workteam(**workteam_request("gone"))
    assert (await sagemaker.delete_workteam(WorkteamName="gone"))["Success"] is True
    code, message = await error_of(sagemaker.describe_workteam, WorkteamName="gone")
    assert code == "ValidationException" and "does not exist" in message
    code, _ = await error_of(sagemaker.delete_workteam, WorkteamName="gone")
    assert code == "ValidationException"
    code, _ = await error_of(sagemaker.list_tags, ResourceArn=created["WorkteamArn"])
    assert code == "ValidationException"


async def test_list_workteams_filters_sorts_and_pages(
    fake_emulator: Emulator, fake_clock: FakeClock, aws_client: Any
) -> None:
    sagemaker = await aws_client("sagemaker", fake_emulator)
    for name in ("charlie", "alpha", "bravo", "alpha-two"):
        fake_clock.advance(1)
        await sagemaker.create_workteam(**workteam_request(name))

    by_date = await sagemaker.list_workteams()
    assert [t["WorkteamName"] for t in by_date["Workteams"]] == [
        "charlie",
        "alpha",
        "bravo",
        "alpha-two",
    ]
    names: list[str] = []
    params: dict[str, Any] = {"SortBy": "Name", "SortOrder": "Descending", "MaxResults": 3}
    while True:
        page = await sagemaker.list_workteams(**params)
        names += [t["WorkteamName"] for t in page["Workteams"]]
        if "NextToken" not in page:
            break
        params["NextToken"] = page["NextToken"]
    assert names == ["charlie", "bravo", "alpha-two", "alpha"]
    alphas = await sagemaker.list_workteams(NameContains="alpha", SortBy="Name")
    assert [t["WorkteamName"] for t in alphas["Workteams"]] == ["alpha", "alpha-two"]


# --- the handler ------------------------------------------------------------


def test_a_described_team_has_succeeded_and_gives_its_arn() -> None:
    team = {
        "WorkteamName": "t",
        "WorkteamArn": ARN_PREFIX + "t",
        "MemberDefinitions": [cognito("a")],
        "SubDomain": "abc.labeling.us-east-1.sagemaker.aws",
    }
    assert KIND.phase(team) is Phase.SUCCEEDED
    assert KIND.outputs(team) == {"workteam_arn": ARN_PREFIX + "t"}
    assert KIND.details(team)["labeling_portal"] == "https://abc.labeling.us-east-1.sagemaker.aws"


def test_adopts_a_team_with_the_same_members_in_any_order() -> None:
    existing = {"WorkteamName": "t", "MemberDefinitions": [cognito("a"), cognito("b")]}
    assert adopt(existing, workteam_request("t", "b", "a"))
    with pytest.raises(
        JobError, match=rf"missing: Cognito group c of {POOL}; not asked for: Cognito group b "
    ):
        adopt(existing, workteam_request("t", "a", "c"))


# --- the engine -------------------------------------------------------------


def local_runner(emulator: Emulator, **kwargs: Any) -> Runner:
    config = emulator_config(emulator)
    kwargs.setdefault("settings", Settings.fast(drain_grace=0.2))
    return Runner(config, **kwargs)


async def test_engine_creates_a_team_and_outputs_its_arn(emulator: Emulator) -> None:
    events: list[object] = []
    async with local_runner(emulator, sinks=[events.append]) as runner:
        job = await runner.submit("team", "workteam", workteam_request(None))
        result = await job.wait()

    assert result.outcome is Outcome.SUCCEEDED
    assert result.outputs["workteam_arn"] == ARN_PREFIX + job.name.lower()
    assert result.arn == result.outputs["workteam_arn"]
    assert not result.attached and result.failure_reason is None
    assert result.details["members"] == 1
    assert emulator.count("CreateWorkteam") == 1
    # our tags are on the team, so that a restarted run can tell it is its own
    tags = emulator.sagemaker.tags[result.outputs["workteam_arn"]]
    assert {"Key": "smrun:job", "Value": "team"} in tags
    # a team has no status: nothing to report between submitted and finished
    assert not [e for e in events if isinstance(e, StatusChanged)]


async def test_engine_adopts_an_existing_team_with_the_same_members(emulator: Emulator) -> None:
    emulator.sagemaker.operations["CreateWorkteam"](workteam_request("shared", "a", "b"))
    events: list[object] = []
    async with local_runner(emulator, sinks=[events.append]) as runner:
        job = await runner.submit("team", "workteam", workteam_request("shared", "b", "a"))
        result = await job.wait()

    assert result.outcome is Outcome.SUCCEEDED and result.attached
    assert result.outputs["workteam_arn"] == ARN_PREFIX + "shared"
    assert emulator.count("CreateWorkteam") == 0  # only the direct call above
    submitted = [e for e in events if isinstance(e, Submitted)]
    assert len(submitted) == 1 and submitted[0].attached


async def test_engine_refuses_an_existing_team_with_other_members(emulator: Emulator) -> None:
    emulator.sagemaker.operations["CreateWorkteam"](workteam_request("shared", "a"))
    async with local_runner(emulator) as runner:
        job = await runner.submit("team", "workteam", workteam_request("shared", "z"))
        result = await job.wait()

    assert result.outcome is Outcome.FAILED
    assert result.failure_reason is not None and "other members" in result.failure_reason
