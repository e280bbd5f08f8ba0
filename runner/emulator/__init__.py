"""A local SageMaker, CloudWatch Logs, SQS, EventBridge and STS
(GetCallerIdentity), in the AWS wire protocol.

``async with Emulator() as emu:`` then point aiobotocore clients at
``emu.url``. Behaviour of jobs is set by ``smrun:emulator:*`` tags on the
create request (see :mod:`smrun.emulator.training`); faults (throttling,
5xx, refused keys, AccessDenied...) by :class:`FaultConfig`; time by the
``clock`` argument. Every state change is published (imperfectly, with
:class:`EventFaults`) to the EventBridge at ``events_url`` when one is given,
else to the emulator's own bus whenever a rule there has a target (which is
what ``smrun events setup`` against the emulator makes);
:meth:`Emulator.rates_report` tells calls per operation per second and the
emulator's CPU. The account's service quotas are off unless given
(``Emulator(quotas={"ml.m5.large for training job usage": 2})``, :class:`Quotas`):
a create over one is refused with ResourceLimitExceeded, as SageMaker refuses
it; :meth:`Emulator.concurrency_report` tells the current and peak jobs and
instances per job family and the refusals (:mod:`smrun.emulator.quotas`).
"""

from smrun.emulator.auth import KeyRefusal
from smrun.emulator.eventbridge import EventFaults
from smrun.emulator.logs import LogStore
from smrun.emulator.protocol import ApiError
from smrun.emulator.quotas import Quotas
from smrun.emulator.resources import FakeClock
from smrun.emulator.server import Emulator, FaultConfig, serve

__all__ = [
    "ApiError",
    "Emulator",
    "EventFaults",
    "FakeClock",
    "FaultConfig",
    "KeyRefusal",
    "LogStore",
    "Quotas",
    "serve",
]
