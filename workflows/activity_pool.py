"""The sync activities as module-level functions, for a process pool inside one activity worker
(`WORKER_ACTIVITY_EXECUTOR=processes`).

A `ProcessPoolExecutor` pickles what it runs, so it cannot run the bound methods of
`ExportActivities`/`NotifyActivities` (they hold boto3 and pymongo clients). Each function here
has the name, argument and result types of the method it stands for, and delegates to an
instance built once per pool process, lazily, from the settings the pool's initializer passed
(the parent worker's settings). Heartbeats and cancellation reach the server through the SDK's
`SharedStateManager` (see `workflows.worker_processes.activity_worker`).

What needs the Temporal client or is async (the janitor's sweep) stays in the parent process.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
from collections.abc import Callable
from typing import Any

from temporalio import activity

from activities.export_activities import ExportActivities
from activities.notify_activities import NotifyActivities
from activities.partition_activities import (
    ComposeRequest,
    ComposeResult,
    DiscardRequest,
    PartitionActivities,
    PartitionPlan,
)
from domain.activity_io import (
    AbortRequest,
    ChannelNotice,
    CompleteRequest,
    CompleteResult,
    Outcome,
    PartRequest,
    PartResult,
    PreparedExport,
    UploadTarget,
)
from domain.models import ExportInput
from domain.settings import Settings

_PR_SET_PDEATHSIG = 1

_settings: Settings | None = None
_exports: ExportActivities | None = None
_notify: NotifyActivities | None = None
_partitions: PartitionActivities | None = None


def init_pool_process(settings: Settings) -> None:
    """The pool's initializer, in each pool process: the parent's settings; the process ends
    with its parent (even a SIGKILLed one) and leaves Ctrl-C to the parent, which shuts the
    pool down gracefully."""
    global _settings, _exports, _notify, _partitions
    _settings, _exports, _notify, _partitions = settings, None, None, None
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _here() -> Settings:
    global _settings
    if _settings is None:  # not started by the pool's initializer: from the environment
        _settings = Settings()
    return _settings


def _export_activities() -> ExportActivities:
    global _exports
    if _exports is None:
        _exports = ExportActivities(_here())
    return _exports


def _partition_activities() -> PartitionActivities:
    global _partitions
    if _partitions is None:
        _partitions = PartitionActivities(_here())
    return _partitions


def _notify_activities() -> NotifyActivities:
    global _notify
    if _notify is None:
        _notify = NotifyActivities(_here())
    return _notify


@activity.defn(name="prepare_export")
def prepare_export(export: ExportInput) -> PreparedExport:
    return _export_activities().prepare_export(export)


@activity.defn(name="start_upload")
def start_upload(target: UploadTarget) -> str:
    return _export_activities().start_upload(target)


@activity.defn(name="upload_next_part")
def upload_next_part(request: PartRequest) -> PartResult:
    return _export_activities().upload_next_part(request)


@activity.defn(name="complete_upload")
def complete_upload(request: CompleteRequest) -> None:
    _export_activities().complete_upload(request)


@activity.defn(name="verify_and_complete")
def verify_and_complete(request: CompleteRequest) -> CompleteResult:
    return _export_activities().verify_and_complete(request)


@activity.defn(name="abort_upload")
def abort_upload(request: AbortRequest) -> None:
    _export_activities().abort_upload(request)


@activity.defn(name="plan_partitions")
def plan_partitions(export: ExportInput) -> PartitionPlan:
    return _partition_activities().plan_partitions(export)


@activity.defn(name="compose_partitions")
def compose_partitions(request: ComposeRequest) -> ComposeResult:
    return _partition_activities().compose_partitions(request)


@activity.defn(name="discard_partitions")
def discard_partitions(request: DiscardRequest) -> int:
    return _partition_activities().discard_partitions(request)


@activity.defn(name="notify_channel")
def notify_channel(notice: ChannelNotice) -> None:
    _notify_activities().notify_channel(notice)


@activity.defn(name="notify")
def notify(outcome: Outcome) -> None:
    _notify_activities().notify(outcome)


POOLED: list[Callable[..., Any]] = [
    prepare_export,
    start_upload,
    upload_next_part,
    complete_upload,
    verify_and_complete,
    abort_upload,
    plan_partitions,
    compose_partitions,
    discard_partitions,
    notify_channel,
    notify,
]
"""Every sync activity, in the order of `ExportActivities.all()` + `PartitionActivities.all()` +
`NotifyActivities.all()`."""
