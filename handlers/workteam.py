"""Private workteams: everything special about them.

A workteam has no lifecycle: CreateWorkteam makes it at once, so it has
succeeded as soon as DescribeWorkteam shows it. That describe wraps the team
in a ``Workteam`` member (``describe_member``); the engine and these
functions see the team itself.

A team is a standing resource that many labeling jobs and many runs share,
so an existing team of the same name is used as it is (adopted) when it has
the members asked for; one with other members is refused, with the
difference spelled out, rather than silently labeling with other people.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from smrun.kind import Kind
from smrun.types import Description, JobError, Phase, Request
from smrun.v1 import Args, ArgumentError, Component, Input, InputType, Output


def phase(d: Description, state: Mapping[str, Any]) -> Phase:
    return Phase.SUCCEEDED if d.get("WorkteamArn") else Phase.RUNNING


def outputs(d: Description) -> dict[str, Any]:
    return {"workteam_arn": d.get("WorkteamArn", "")}


def details(d: Description) -> dict[str, Any]:
    facts: dict[str, Any] = {"members": len(d.get("MemberDefinitions", []))}
    if d.get("SubDomain"):
        facts["labeling_portal"] = f"https://{d['SubDomain']}"
    if d.get("WorkforceArn"):
        facts["workforce_arn"] = d["WorkforceArn"]
    return facts


def _members(definitions: Any) -> dict[str, str]:
    """Each member definition, canonical (so that order doesn't matter), with how to show it."""
    members: dict[str, str] = {}
    for member in definitions or []:
        cognito = member.get("CognitoMemberDefinition")
        if cognito:
            label = f"Cognito group {cognito.get('UserGroup')} of {cognito.get('UserPool')}"
        else:
            groups = (member.get("OidcMemberDefinition") or {}).get("Groups", [])
            label = f"OIDC groups {', '.join(groups)}"
        members[json.dumps(member, sort_keys=True)] = label
    return members


def adopt(existing: Description, request: Request) -> bool:
    """Use an existing team of this name when it has the members asked for."""
    have = _members(existing.get("MemberDefinitions"))
    want = _members(request.get("MemberDefinitions"))
    if have.keys() != want.keys():
        missing = [label for key, label in want.items() if key not in have]
        extra = [label for key, label in have.items() if key not in want]
        raise JobError(
            f"workteam {existing.get('WorkteamName')} already exists with other members "
            f"(missing: {'; '.join(missing) or 'none'}; not asked for: "
            f"{'; '.join(extra) or 'none'}); update it or choose another name"
        )
    return True


KIND = Kind(
    name="workteam",
    console_path="labeling-workforces",
    create="CreateWorkteam",
    describe="DescribeWorkteam",
    name_field="WorkteamName",
    arn_field="WorkteamArn",
    status_field="",  # none: created synchronously; `phase` decides
    describe_member="Workteam",
    success=frozenset(),
    failure=frozenset(),
    phase_hook=phase,
    outputs=outputs,
    output_types={"workteam_arn": str},
    details=details,
    adopt=adopt,
)


# ---------------------------------------------------------------------------
# the KFP v1 "workteam" component


def to_request(args: Args) -> Request:
    """The CreateWorkteam request for the v1 workteam component's arguments: one
    Cognito member definition per user group, all of one user pool and app client."""
    if not args["user_groups"]:
        raise ArgumentError("user_groups", "give at least one user group")
    for name in ("user_pool", "client_id"):
        if not args[name]:
            raise ArgumentError(name, "is required for the team's Cognito user groups")
    request: Request = {
        "Description": args["description"],
        "MemberDefinitions": [
            {"CognitoMemberDefinition": {
                "UserPool": args["user_pool"], "UserGroup": group, "ClientId": args["client_id"],
            }}
            for group in args["user_groups"]
        ],
    }
    if args["sns_topic"]:
        request["NotificationConfiguration"] = {"NotificationTopicArn": args["sns_topic"]}
    return request


S, CSV = InputType.STRING, InputType.CSV_LIST

COMPONENT = Component(
    name="workteam",
    kind="workteam",
    title="SageMaker - Private Workforce",
    description="Private workforce in SageMaker",
    name_input="team_name",
    console_path="labeling-workforces/private-details",
    to_request=to_request,
    inputs=(
        Input("team_name", S, description="The name of your work team."),
        Input("description", S, description="A description of the work team."),
        Input("user_pool", S, "", "An identifier for a user pool. The user pool must be in the "
              "same region as the service that you are calling."),
        Input("user_groups", CSV, [], "A list of identifiers for user groups separated by "
              "commas."),
        Input("client_id", S, "", "An identifier for an application client. You must create "
              "the app client ID using Amazon Cognito."),
        Input("sns_topic", S, "", "The ARN for the SNS topic to which notifications should be "
              "published."),
    ),
    outputs=(Output("workteam_arn", "The ARN of the workteam."),),
)
