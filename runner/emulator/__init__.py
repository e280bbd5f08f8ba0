"""A local SageMaker, CloudWatch Logs and STS (GetCallerIdentity), in the AWS wire protocol.

``async with Emulator() as emu:`` then point aiobotocore clients at
``emu.url``. Behaviour of jobs is set by ``smrun:emulator:*`` tags on the
create request (see :mod:`runner.emulator.training`); faults (throttling,
5xx, refused keys, AccessDenied...) by :class:`FaultConfig`; time by the
``clock`` argument. Given ``events_url``, every state change is published to
that EventBridge (imperfectly, with :class:`EventFaults`); :meth:`Emulator.rates_report`
tells calls per operation per second and the emulator's CPU.
"""

from runner.emulator.auth import KeyRefusal
from runner.emulator.eventbridge import EventFaults
from runner.emulator.logs import LogStore
from runner.emulator.protocol import ApiError
from runner.emulator.resources import FakeClock
from runner.emulator.server import Emulator, FaultConfig, serve

__all__ = [
    "ApiError",
    "Emulator",
    "EventFaults",
    "FakeClock",
    "FaultConfig",
    "KeyRefusal",
    "LogStore",
    "serve",
]
