"""Private workteams: Create, Describe, List, Update and Delete.

A workteam has no lifecycle: CreateWorkteam makes it at once and
DescribeWorkteam answers ``{"Workteam": {...}}``. Its ARN is
``arn:aws:sagemaker:{region}:{account}:workteam/private-crowd/{name}``, the
form a labeling job's ``HumanTaskConfig.WorkteamArn`` names (the labeling
jobs of :mod:`smrun.emulator.labeling` look their team up here).

Every team belongs to a private workforce (``WorkforceName``, default
``default``). A workforce authenticates its workers one way: the first team
decides whether it is Amazon Cognito (one user pool and app client) or OIDC,
and later teams must use the same, as SageMaker requires (deleting its
teams doesn't delete the workforce). All teams of a workforce share its
labeling portal, ``SubDomain``.

Workteams take no behaviour tags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from smrun.emulator.protocol import ApiError, Params
from smrun.emulator.resources import Result, SageMaker, paginate, stable_fraction

DEFAULT_WORKFORCE = "default"
# The members UpdateWorkteam may change.
UPDATABLE = (
    "MemberDefinitions",
    "Description",
    "NotificationConfiguration",
    "WorkerAccessConfiguration",
)


@dataclass(frozen=True)
class Identity:
    """How a workforce's workers sign in: Cognito (pool, client) or OIDC."""

    provider: str  # "Cognito" or "Oidc"
    user_pool: str = ""
    client_id: str = ""

    def describe(self) -> str:
        if self.provider == "Oidc":
            return "an OIDC identity provider"
        return f"Cognito user pool {self.user_pool} with app client {self.client_id}"


def identity_of(members: list[Params]) -> Identity:
    """The one sign-in identity a team's member definitions use, or ValidationException."""
    found: set[Identity] = set()
    for member in members:
        cognito = member.get("CognitoMemberDefinition")
        oidc = member.get("OidcMemberDefinition")
        if (cognito is None) == (oidc is None):
            raise ApiError(
                "ValidationException",
                "Each MemberDefinition must contain exactly one of CognitoMemberDefinition "
                "and OidcMemberDefinition.",
            )
        if cognito is not None:
            found.add(Identity("Cognito", cognito["UserPool"], cognito["ClientId"]))
        elif oidc is not None:
            if not oidc.get("Groups"):
                raise ApiError(
                    "ValidationException", "OidcMemberDefinition must name at least one group."
                )
            found.add(Identity("Oidc"))
    if len(found) != 1:
        raise ApiError(
            "ValidationException",
            "All MemberDefinitions of a work team must come from the same identity provider: "
            "either Cognito user groups of one user pool and app client, or OIDC groups.",
        )
    return found.pop()


class Workteam:
    def __init__(self, sagemaker: SageMaker, params: Params, now: float, sub_domain: str) -> None:
        self.name: str = params["WorkteamName"]
        self.arn = sagemaker.arn("workteam", f"private-crowd/{self.name}")
        self.workforce = params.get("WorkforceName", DEFAULT_WORKFORCE)
        self.workforce_arn = sagemaker.arn("workforce", self.workforce)
        self.settings: Params = {k: params[k] for k in UPDATABLE if k in params}
        self.sub_domain = sub_domain
        self.created = now
        self.updated = now

    def view(self) -> Result:
        return {
            "WorkteamName": self.name,
            "WorkteamArn": self.arn,
            "WorkforceArn": self.workforce_arn,
            **self.settings,
            "SubDomain": self.sub_domain,
            "CreateDate": self.created,
            "LastUpdatedDate": self.updated,
        }


class Workteams:
    """The workteam operations and the teams they act on."""

    def __init__(self, sagemaker: SageMaker) -> None:
        self.sagemaker = sagemaker
        self.teams: dict[str, Workteam] = {}  # by lower-cased name: names are case-insensitive
        self.identities: dict[str, Identity] = {}  # by workforce name, set by its first team

    def install(self) -> None:
        for operation, handler in (
            ("CreateWorkteam", self.create),
            ("DescribeWorkteam", self.describe),
            ("ListWorkteams", self.list),
            ("UpdateWorkteam", self.update),
            ("DeleteWorkteam", self.delete),
        ):
            self.sagemaker.register(operation, handler)

    def team(self, name: str) -> Workteam:
        try:
            return self.teams[name.lower()]
        except KeyError:
            raise ApiError(
                "ValidationException", f"Workteam {name} does not exist or could not be found."
            ) from None

    def by_arn(self, arn: str) -> Workteam | None:
        """The team an ARN names, as a labeling job's HumanTaskConfig gives it."""
        return next((t for t in self.teams.values() if t.arn == arn.lower()), None)

    def _sub_domain(self, workforce: str) -> str:
        s = self.sagemaker
        token = format(int(stable_fraction(s.account, s.region, workforce) * 16**10), "010x")
        return f"{token}.labeling.{s.region}.sagemaker.aws"

    def _check_identity(self, workforce: str, members: list[Params]) -> Identity:
        identity = identity_of(members)
        known = self.identities.get(workforce)
        if known is not None and known != identity:
            raise ApiError(
                "ValidationException",
                f"Workforce {workforce} signs its workers in with {known.describe()}; "
                f"a work team in it can't use {identity.describe()}.",
            )
        return identity

    def create(self, params: Params) -> Result:
        name = params["WorkteamName"]
        existing = self.teams.get(name.lower())
        if existing is not None:
            raise ApiError("ResourceInUse", f"Workteam {name} already exists ({existing.arn}).")
        workforce = params.get("WorkforceName", DEFAULT_WORKFORCE)
        identity = self._check_identity(workforce, params["MemberDefinitions"])
        team = Workteam(self.sagemaker, params, self.sagemaker.now, self._sub_domain(workforce))
        self.identities.setdefault(workforce, identity)
        self.teams[name.lower()] = team
        self.sagemaker.add_resource(team.arn, params.get("Tags"))
        return {"WorkteamArn": team.arn}

    def describe(self, params: Params) -> Result:
        return {"Workteam": self.team(params["WorkteamName"]).view()}

    def update(self, params: Params) -> Result:
        team = self.team(params["WorkteamName"])
        members = params.get("MemberDefinitions")
        if members is not None:
            self._check_identity(team.workforce, members)
        team.settings.update({k: params[k] for k in UPDATABLE if k in params})
        team.updated = self.sagemaker.now
        return {"Workteam": team.view()}

    def delete(self, params: Params) -> Result:
        team = self.team(params["WorkteamName"])
        del self.teams[team.name.lower()]
        self.sagemaker.tags.pop(team.arn, None)
        return {"Success": True}

    def list(self, params: Params) -> Result:
        contains = params.get("NameContains", "").lower()
        views = [t.view() for t in self.teams.values() if contains in t.name.lower()]
        key: Callable[[Result], Any] = {
            "Name": lambda v: v["WorkteamName"],
            "CreateDate": lambda v: (v["CreateDate"], v["WorkteamName"]),
        }[params.get("SortBy", "CreateDate")]
        page, token = paginate(
            views,
            key=key,
            max_results=params.get("MaxResults", 10),
            next_token=params.get("NextToken"),
            descending=params.get("SortOrder", "Ascending") == "Descending",
        )
        result: Result = {"Workteams": page}
        if token is not None:
            result["NextToken"] = token
        return result


def install_kind(sagemaker: SageMaker) -> None:
    teams = Workteams(sagemaker)
    teams.install()
    sagemaker.kinds["workteam"] = teams
