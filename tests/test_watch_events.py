"""The events source's pure core: SageMaker's EventBridge events read as Updates,
the duplicate/out-of-order rule, and the queue consumer's bookkeeping on an
injected ``call`` (the consumer against moto's SQS is in test_events_setup.py).

The sample events are written here in the shape of the samples on SageMaker's
EventBridge page: epoch-millisecond times (as numbers, as digit strings, as
floats), ISO strings, UPPER_SNAKE endpoint statuses, a transform detail without
LastModifiedTime.
"""

from __future__ import annotations

import copy
import json
import random
from datetime import datetime, timedelta, timezone
from typing import Any

import anyio
import pytest
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st

from smrun.aws import EnvironmentProblem
from smrun.budget import Priority
from smrun.handlers import KINDS
from smrun.watch import Update, newer
from smrun.watch.events import (
    MIRRORS_DESCRIBE,
    EventQueue,
    EventQueueError,
    api_spelling,
    event_time,
    is_time_member,
    parse_event,
)
from tests.helpers import EVENT_ACCOUNT, EVENT_T0, sagemaker_model, training_event_detail

UTC = timezone.utc
ACCOUNT = EVENT_ACCOUNT
T0 = EVENT_T0  # epoch milliseconds
T0_UTC = datetime(2024, 5, 29, 16, 26, 40, tzinfo=UTC)


def envelope(detail_type: str, detail: dict[str, Any], *, arn: str = "",
             source: str = "aws.sagemaker", time: Any = "2024-05-29T16:26:41Z") -> dict[str, Any]:
    return {
        "version": "0",
        "id": "5f0c2a52-1b7e-4a7e-9c5e-8d2f0e7a9b11",
        "detail-type": detail_type,
        "source": source,
        "account": ACCOUNT,
        "time": time,
        "region": "us-west-2",
        "resources": [arn] if arn else [],
        "detail": detail,
    }


def training_event(**kwargs: Any) -> dict[str, Any]:
    detail = training_event_detail(**kwargs)
    return envelope("SageMaker Training Job State Change", detail, arn=detail["TrainingJobArn"])


ENDPOINT = envelope(
    "SageMaker Endpoint State Change",
    {
        "EndpointName": "churn-live",
        "EndpointArn": f"arn:aws:sagemaker:us-west-2:{ACCOUNT}:endpoint/churn-live",
        "EndpointConfigName": "churn-live-config-3",
        "ProductionVariants": [{"DesiredWeight": 1.0, "DesiredInstanceCount": 2.0}],
        "EndpointStatus": "IN_SERVICE",
        "CreationTime": float(T0 - 900_000),
        "LastModifiedTime": float(T0),
        "Tags": {},
    },
    time=str(T0 + 500),  # the endpoint sample's envelope time is epoch ms too
)
TUNING = envelope(
    "SageMaker HyperParameter Tuning Job State Change",
    {
        "HyperParameterTuningJobName": "churn-hpo-2",
        "HyperParameterTuningJobArn":
            f"arn:aws:sagemaker:us-west-2:{ACCOUNT}:hyper-parameter-tuning-job/churn-hpo-2",
        "TrainingJobDefinition": {"StaticHyperParameters": {},
                                  "AlgorithmSpecification": {"TrainingInputMode": "File"}},
        "HyperParameterTuningJobStatus": "InProgress",
        "CreationTime": str(T0 - 60_000),
        "LastModifiedTime": str(T0),
        "TrainingJobStatusCounters": {"Completed": 3, "InProgress": 2, "RetryableError": 0,
                                      "NonRetryableError": 0, "Stopped": 0},
        "ObjectiveStatusCounters": {"Succeeded": 3, "Pending": 2, "Failed": 0},
        "Tags": {},
    },
)
PROCESSING = envelope(
    "SageMaker Processing Job State Change",
    {
        "ProcessingJobName": "churn-features-11",
        "ProcessingJobArn":
            f"arn:aws:sagemaker:us-west-2:{ACCOUNT}:processing-job/churn-features-11",
        "ProcessingJobStatus": "Failed",
        "FailureReason": "ClientError: no such key s3://churn-data/raw/",
        "ProcessingOutputConfig": {"Outputs": [{
            "OutputName": "features",
            "S3Output": {"S3Uri": "s3://churn-data/features/", "LocalPath": "/opt/ml/out",
                         "S3UploadMode": "EndOfJob"}}]},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1,
                                                  "InstanceType": "ml.c5.xlarge",
                                                  "VolumeSizeInGB": 10}},
        "AppSpecification": {"ImageUri": "123456789012.dkr.ecr.us-west-2.amazonaws.com/prep"},
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/sagemaker-exec",
        "ProcessingStartTime": T0 - 30_000,
        "ProcessingEndTime": T0,
        "LastModifiedTime": T0,
        "CreationTime": T0 - 90_000,
    },
)
TRANSFORM = envelope(
    "SageMaker Transform Job State Change",
    {
        "TransformJobName": "churn-score-4",
        "TransformJobArn": f"arn:aws:sagemaker:us-west-2:{ACCOUNT}:transform-job/churn-score-4",
        "TransformJobStatus": "Completed",
        "ModelName": "churn-model",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3DataType": "S3Prefix",
                                                           "S3Uri": "s3://churn-data/score/"}}},
        "TransformOutput": {"S3OutputPath": "s3://churn-data/scored/"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        "CreationTime": "2024-05-29T16:10:00Z",
        "TransformStartTime": "2024-05-29T16:14:00Z",
        "TransformEndTime": "2024-05-29T16:26:00Z",
        "Tags": {},
    },
    time="2024-05-29T16:26:02Z",
)
LABELING = envelope(
    "SageMaker Ground Truth Labeling Job State Change",
    {
        "LabelingJobName": "churn-labels-1",
        "LabelingJobArn": f"arn:aws:sagemaker:us-west-2:{ACCOUNT}:labeling-job/churn-labels-1",
        "LabelingJobStatus": "Completed",
        "LabelCounters": {"TotalLabeled": 100, "HumanLabeled": 100, "Unlabeled": 0},
        "LabelingJobOutput": {"OutputDatasetS3Uri": "s3://labels/out/manifest"},
        "CreationTime": "2024-05-29T15:00:00.123456789Z",
        "LastModifiedTime": "2024-05-29T16:26:40.5Z",
    },
)


# ---------------------------------------------------------------- parse_event: training


def test_a_completed_training_event_with_its_artifacts_is_a_complete_update() -> None:
    update = parse_event(json.dumps(training_event()), KINDS)
    assert update is not None
    assert (update.kind, update.name, update.status, update.secondary, update.source) == (
        "training", "xgb-churn-7", "Completed", "Completed", "events")
    assert update.modified == T0_UTC
    assert update.complete
    # the facts are the detail with its times as datetimes, nested ones too
    assert update.facts["TrainingEndTime"] == T0_UTC
    assert update.facts["SecondaryStatusTransitions"][0]["EndTime"] == T0_UTC - timedelta(
        seconds=540)
    assert update.facts["FinalMetricDataList"][0]["Timestamp"] == T0_UTC - timedelta(seconds=2)
    assert update.facts["BillableTimeInSeconds"] == 540  # "...Seconds" is no time
    # and what the job reads from a describe can be read from them
    training = KINDS["training"]
    assert training.outputs(update.facts)["model_artifact_url"].endswith("model.tar.gz")
    assert training.end_time(update.facts) == T0_UTC
    assert training.details(update.facts)["billable_instance_seconds"] == 1080


def test_a_completed_training_event_without_artifacts_is_not_complete() -> None:
    # AWS's own sample has no ModelArtifacts, and its times are digit strings
    event = training_event(artifacts=False, modified=str(T0))
    update = parse_event(event, KINDS)
    assert update is not None and update.status == "Completed"
    assert update.modified == T0_UTC
    assert not update.complete


@pytest.mark.parametrize("status, secondary", [("InProgress", "Training"),
                                               ("Failed", "Failed"), ("Stopped", "Stopped")])
def test_a_training_event_that_is_not_a_success_is_not_complete(
    status: str, secondary: str
) -> None:
    update = parse_event(training_event(status=status, secondary=secondary, artifacts=False),
                         KINDS)
    assert update is not None
    assert (update.status, update.secondary, update.complete) == (status, secondary, False)


def test_only_the_kinds_said_to_mirror_describe_are_ever_complete() -> None:
    assert "training" in MIRRORS_DESCRIBE
    update = parse_event(training_event(), KINDS, mirrors_describe=())
    assert update is not None and not update.complete


# ---------------------------------------------------------------- parse_event: other kinds


def test_an_endpoint_event_is_spelled_the_apis_way() -> None:
    update = parse_event(ENDPOINT, KINDS)
    assert update is not None
    assert (update.kind, update.name, update.status) == ("endpoint", "churn-live", "InService")
    assert update.facts["EndpointStatus"] == "InService"  # hooks read the facts
    assert update.modified == T0_UTC  # from a float of milliseconds
    assert update.facts["CreationTime"] == T0_UTC - timedelta(minutes=15)
    assert not update.complete
    assert KINDS["endpoint"].phase_of(update.status).value == "succeeded"


def test_a_tuning_event_with_digit_string_times() -> None:
    update = parse_event(TUNING, KINDS)
    assert update is not None
    assert (update.kind, update.name, update.status, update.secondary) == (
        "tuning", "churn-hpo-2", "InProgress", None)
    assert update.modified == T0_UTC
    assert update.facts["TrainingJobStatusCounters"]["Completed"] == 3
    assert not update.complete


def test_a_failed_processing_event_keeps_its_failure_reason() -> None:
    update = parse_event(PROCESSING, KINDS)
    assert update is not None
    assert (update.kind, update.status) == ("processing", "Failed")
    assert update.facts["FailureReason"].startswith("ClientError")
    assert update.facts["ProcessingEndTime"] == T0_UTC
    assert not update.complete  # processing's detail is not documented to mirror describe


def test_a_transform_event_without_last_modified_time_is_ordered_by_the_envelope() -> None:
    update = parse_event(TRANSFORM, KINDS)
    assert update is not None
    assert (update.kind, update.name, update.status) == ("transform", "churn-score-4",
                                                         "Completed")
    assert update.modified == datetime(2024, 5, 29, 16, 26, 2, tzinfo=UTC)
    assert update.facts["TransformEndTime"] == datetime(2024, 5, 29, 16, 26, tzinfo=UTC)


def test_a_labeling_event_with_iso_times_of_any_precision() -> None:
    update = parse_event(LABELING, KINDS)
    assert update is not None
    assert (update.kind, update.status) == ("labeling", "Completed")
    assert update.modified == datetime(2024, 5, 29, 16, 26, 40, 500000, tzinfo=UTC)
    assert update.facts["CreationTime"] == datetime(2024, 5, 29, 15, 0, 0, 123456, tzinfo=UTC)


def test_every_kind_that_sends_events_is_read() -> None:
    evented = {kind.name: kind for kind in KINDS.values() if kind.event_type}
    assert set(evented) == {"training", "tuning", "processing", "transform", "endpoint",
                            "labeling"}
    for kind in evented.values():
        assert kind.event_type is not None
        detail = {kind.name_field: f"{kind.name}-1", kind.status_field: "InProgress",
                  "LastModifiedTime": T0}
        update = parse_event(envelope(kind.event_type, detail), KINDS)
        assert update is not None, kind.name
        assert (update.kind, update.name, update.modified) == (kind.name, f"{kind.name}-1",
                                                               T0_UTC)


def test_a_mapping_body_reads_like_its_json() -> None:
    event = training_event()
    assert parse_event(event, KINDS) == parse_event(json.dumps(event), KINDS)
    assert parse_event(json.dumps(event).encode(), KINDS) == parse_event(event, KINDS)


def test_parsing_does_not_change_the_event() -> None:
    event = training_event()
    before = copy.deepcopy(event)
    parse_event(event, KINDS)
    assert event == before


# ---------------------------------------------------------------- parse_event: not ours


def _without(event: dict[str, Any], member: str) -> dict[str, Any]:
    event = copy.deepcopy(event)
    del event["detail"][member]
    return event


def _with(event: dict[str, Any], **detail: Any) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["detail"].update(detail)
    return event


@pytest.mark.parametrize("body", [
    "", "not json", "[]", "null", "42", '"text"', "{", "[" * 100_000, b"\xff\xfe",
    json.dumps({"source": "aws.sagemaker"}),
    json.dumps({k: v for k, v in training_event().items() if k != "detail"}),
    json.dumps({**training_event(), "detail": "TrainingJobName"}),
    json.dumps({**training_event(), "detail-type": None}),
    json.dumps(_without(training_event(), "TrainingJobName")),
    json.dumps(_without(training_event(), "TrainingJobStatus")),
    json.dumps(_with(training_event(), TrainingJobName="")),
    json.dumps(_with(training_event(), TrainingJobName=["xgb"])),
    json.dumps(_with(training_event(), TrainingJobStatus=7)),
], ids=lambda body: repr(body)[:40])
def test_a_malformed_message_is_no_update(body: str | bytes) -> None:
    assert parse_event(body, KINDS) is None


@pytest.mark.parametrize("event", [
    envelope("SageMaker Training Job State Change", training_event_detail(), source="aws.ec2"),
    envelope("SageMaker Endpoint Deployment State Change", ENDPOINT["detail"]),
    envelope("SageMaker Model Building Pipeline Execution Status Change",
             {"currentPipelineExecutionStatus": "Succeeded"}),
    envelope("SageMaker Training Job State Change ", training_event_detail()),
], ids=["other source", "deployment", "pipeline", "near miss"])
def test_other_sources_and_detail_types_are_no_update(event: dict[str, Any]) -> None:
    assert parse_event(event, KINDS) is None


def test_a_kind_left_out_of_the_mapping_is_no_update() -> None:
    only_training = {"training": KINDS["training"]}
    assert parse_event(ENDPOINT, only_training) is None
    assert parse_event(training_event(), only_training) is not None


def test_a_detail_nested_as_deep_as_json_allows_is_no_update() -> None:
    deep = "[" * 900 + "]" * 900
    body = json.dumps(training_event()).replace('"Tags": {}', f'"Tags": {deep}')
    assert json.loads(body)  # json itself reads it
    assert parse_event(body, KINDS) is None


def test_other_accounts_resources_are_not_filtered_here() -> None:
    event = training_event()
    event["account"] = "999999999999"
    assert parse_event(event, KINDS) is not None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=20), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(json_values, st.text()))
def test_parse_event_never_raises_on_any_body(value: Any) -> None:
    body = value if isinstance(value, str) else json.dumps(value)
    result = parse_event(body, KINDS)
    assert result is None or isinstance(result, Update)


detail_types = st.sampled_from(sorted(k.event_type for k in KINDS.values() if k.event_type))
detail_members = st.sampled_from(["TrainingJobName", "TrainingJobStatus", "SecondaryStatus",
                                  "EndpointStatus", "EndpointName", "LastModifiedTime",
                                  "ModelArtifacts", "AlgorithmSpecification", "CreationTime",
                                  "SecondaryStatusTransitions"])


@settings(max_examples=300, deadline=None)
@given(detail_types, st.dictionaries(detail_members, json_values, max_size=6), json_values)
def test_parse_event_never_raises_on_any_detail(
    detail_type: str, detail: dict[str, Any], time: Any
) -> None:
    update = parse_event(envelope(detail_type, detail, time=time), KINDS)
    if update is not None:
        assert update.name and update.status and update.source == "events"
        assert update.modified is None or update.modified.tzinfo is not None


# ---------------------------------------------------------------- times and spellings


@pytest.mark.parametrize("value, expected", [
    (T0, T0_UTC),
    (float(T0), T0_UTC),
    (str(T0), T0_UTC),
    (f"{T0}.0", T0_UTC),
    (T0 // 1000, T0_UTC),  # epoch seconds
    ("2024-05-29T16:26:40Z", T0_UTC),
    ("2024-05-29T18:26:40+02:00", T0_UTC),
    ("2024-05-29T16:26:40.000000001Z", T0_UTC),
    ("2024-05-29T16:26:40", T0_UTC),
    (datetime(2024, 5, 29, 16, 26, 40), T0_UTC),
    (datetime(2024, 5, 29, 18, 26, 40, tzinfo=timezone(timedelta(hours=2))), T0_UTC),
    (True, None), (None, None), ("", None), ("soon", None), ([T0], None), ({}, None),
    (float("nan"), None), (float("inf"), None), (10**30, None), ("1e12", None),
])
def test_event_times(value: Any, expected: datetime | None) -> None:
    moment = event_time(value)
    assert moment == expected
    if moment is not None:
        assert moment.utcoffset() == timedelta(0)


def _evented_shapes() -> list[tuple[str, Any]]:
    model = sagemaker_model()
    return [(kind.name, model.operation_model(kind.describe).output_shape)
            for kind in KINDS.values() if kind.event_type]


def test_every_status_of_the_evented_kinds_survives_upper_snake_spelling() -> None:
    for name, shape in _evented_shapes():
        kind = KINDS[name]
        fields = [kind.status_field, kind.secondary_status_field]
        for field in filter(None, fields):
            for status in shape.members[field].enum:
                snake = "".join(f"_{c}" if c.isupper() and i else c
                                for i, c in enumerate(status)).upper()
                assert api_spelling(snake) == status, (name, snake)
                assert api_spelling(status) == status


def test_time_members_are_known_by_name_in_every_evented_describe_response() -> None:
    mistaken: list[str] = []

    def walk(shape: Any, seen: frozenset[str]) -> None:
        if shape.name in seen:
            return
        seen = seen | {shape.name}
        if shape.type_name == "structure":
            for member, inner in shape.members.items():
                if (inner.type_name == "timestamp") != is_time_member(member):
                    mistaken.append(f"{shape.name}.{member}")
                walk(inner, seen)
        elif shape.type_name == "list":
            walk(shape.member, seen)
        elif shape.type_name == "map":
            walk(shape.value, seen)

    for _, shape in _evented_shapes():
        walk(shape, frozenset())
    assert mistaken == []


# ---------------------------------------------------------------- newer


def upd(status: str = "InProgress", secondary: str | None = "Training", *,
        at: int | None = 0, complete: bool = False, source: str = "events") -> Update:
    modified = None if at is None else T0_UTC + timedelta(milliseconds=at)
    return Update(kind="training", name="xgb-churn-7", status=status, secondary=secondary,
                  modified=modified, complete=complete, source=source)


def test_the_first_update_is_applied() -> None:
    assert newer(None, upd())


def test_a_later_update_is_applied_and_an_earlier_one_is_out_of_order() -> None:
    early, late = upd("InProgress", at=0), upd("Completed", "Completed", at=5)
    assert newer(early, late)
    assert not newer(late, early)
    # even one that says the same: it is later news of the same state
    assert newer(early, upd("InProgress", at=1))


def test_the_same_instant_and_state_is_a_duplicate() -> None:
    assert not newer(upd(), upd())
    assert not newer(upd(), upd(source="list"))


def test_at_the_same_instant_another_state_is_applied() -> None:
    assert newer(upd("InProgress", "Training"), upd("InProgress", "Uploading"))
    assert newer(upd("InProgress", "Uploading"), upd("Completed", "Uploading"))


def test_an_update_without_a_secondary_status_says_nothing_about_it() -> None:
    # a List* summary at the same instant as the event already applied
    assert not newer(upd(secondary="Training"), upd(secondary=None, source="list"))
    assert newer(upd(secondary=None), upd(secondary="Training"))


def test_complete_facts_of_the_same_state_are_applied_once() -> None:
    event, described = upd("Completed", "Completed"), upd("Completed", "Completed",
                                                          complete=True)
    assert newer(event, described)
    assert not newer(described, event)
    assert not newer(described, described)


def test_without_times_only_a_change_of_state_is_applied() -> None:
    assert not newer(upd(at=None), upd(at=None))
    assert not newer(upd(at=5), upd(at=None))
    assert newer(upd(at=None), upd("Completed", "Completed", at=None))
    assert newer(upd(at=5), upd("Stopping", at=None))


def test_naive_and_aware_times_are_compared_as_utc() -> None:
    naive = Update(kind="training", name="x", status="InProgress",
                   modified=datetime(2024, 5, 29, 16, 26, 40))
    assert not newer(upd(at=0), naive)
    assert newer(naive, upd(at=1))


updates = st.builds(
    upd,
    st.sampled_from(["InProgress", "Stopping", "Completed", "Failed", "Stopped"]),
    st.sampled_from([None, "Starting", "Training", "Uploading", "Completed"]),
    at=st.one_of(st.none(), st.integers(-5, 5)),
    complete=st.booleans(),
)


@given(updates)
def test_an_update_is_never_newer_than_itself(update: Update) -> None:
    assert not newer(update, update)


@given(updates, updates)
def test_of_two_times_only_the_later_is_newer(a: Update, b: Update) -> None:
    if a.modified is not None and b.modified is not None and a.modified != b.modified:
        assert newer(a, b) != newer(b, a)


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=12, unique=True),
       st.randoms(use_true_random=False), st.integers(0, 10))
def test_any_delivery_order_with_duplicates_ends_on_the_latest_change(
    times: list[int], rng: random.Random, duplicates: int
) -> None:
    statuses = ["InProgress", "Stopping", "Completed"]
    changes = [upd(statuses[i % 3], at=t) for i, t in enumerate(sorted(times))]
    delivered = changes + [rng.choice(changes) for _ in range(duplicates)]
    rng.shuffle(delivered)
    applied: Update | None = None
    for update in delivered:
        if newer(applied, update):
            applied = update
    assert applied == changes[-1]


# ---------------------------------------------------------------- the queue, on a fake SQS


class FakeSqs:
    """The two SQS calls the queue makes, answered from lists."""

    def __init__(self, *batches: list[dict[str, Any]], failed: int = 0,
                 receive_error: BaseException | None = None,
                 delete_error: BaseException | None = None,
                 delete_delay: float = 0.0) -> None:
        self.batches = list(batches)
        self.failed = failed
        self.receive_error = receive_error
        self.delete_error = delete_error
        self.delete_delay = delete_delay
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.deleted: list[str] = []

    async def __call__(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        assert service == "sqs"
        self.calls.append((operation, params))
        if operation == "ReceiveMessage":
            if self.receive_error is not None:
                raise self.receive_error
            return {"Messages": self.batches.pop(0)} if self.batches else {}
        assert operation == "DeleteMessageBatch"
        if self.delete_delay:
            await anyio.sleep(self.delete_delay)
        if self.delete_error is not None:
            raise self.delete_error
        entries = params["Entries"]
        ok, bad = entries[self.failed:], entries[:self.failed]
        self.deleted += [e["ReceiptHandle"] for e in ok]
        return {"Successful": [{"Id": e["Id"]} for e in ok],
                "Failed": [{"Id": e["Id"], "SenderFault": True, "Code": "ReceiptHandleIsInvalid",
                            "Message": "expired"} for e in bad]}


def message(body: Any, handle: str) -> dict[str, Any]:
    text = body if isinstance(body, str) else json.dumps(body)
    return {"MessageId": f"m-{handle}", "ReceiptHandle": handle, "Body": text}


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} (test)"},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


URL = "https://sqs.us-west-2.amazonaws.com/111122223333/smrun-events"


async def test_a_round_delivers_ours_deletes_ours_and_foreign_and_leaves_the_unreadable() -> None:
    sqs = FakeSqs([
        message(training_event(), "h-training"),
        message(envelope("SageMaker Endpoint Deployment State Change", {}), "h-foreign"),
        message("not json", "h-garbage"),
        message(ENDPOINT, "h-endpoint"),
    ])
    delivered: list[Update] = []
    queue = EventQueue(sqs, URL, KINDS, delivered.append, wait_seconds=7, batch=4)
    assert await queue.poll_once() == 4
    assert [(u.kind, u.name) for u in delivered] == [("training", "xgb-churn-7"),
                                                     ("endpoint", "churn-live")]
    assert sorted(sqs.deleted) == ["h-endpoint", "h-foreign", "h-training"]
    receive = sqs.calls[0]
    assert receive == ("ReceiveMessage", {"QueueUrl": URL, "MaxNumberOfMessages": 4,
                                          "WaitTimeSeconds": 7, "priority": Priority.LIVE})
    stats = queue.stats
    assert (stats.receives, stats.received, stats.delivered, stats.ignored, stats.unparsed,
            stats.deleted, stats.delete_failures) == (1, 4, 2, 1, 1, 3, 0)


async def test_an_empty_round_deletes_nothing() -> None:
    sqs = FakeSqs()
    queue = EventQueue(sqs, URL, KINDS, lambda u: None)
    assert await queue.poll_once() == 0
    assert [op for op, _ in sqs.calls] == ["ReceiveMessage"]
    assert sqs.calls[0][1]["WaitTimeSeconds"] == 20 and sqs.calls[0][1]["MaxNumberOfMessages"] == 10


async def test_entries_that_fail_to_delete_are_counted_not_raised() -> None:
    sqs = FakeSqs([message(training_event(), "h1"), message(ENDPOINT, "h2")], failed=1)
    queue = EventQueue(sqs, URL, KINDS, lambda u: None)
    await queue.poll_once()
    assert (queue.stats.deleted, queue.stats.delete_failures) == (1, 1)


async def test_what_was_delivered_before_deliver_raised_is_still_deleted() -> None:
    sqs = FakeSqs([message(training_event(), "h1"), message(ENDPOINT, "h2")])

    def deliver(update: Update) -> None:
        if update.kind == "endpoint":
            raise RuntimeError("dispatcher bug")

    queue = EventQueue(sqs, URL, KINDS, deliver)
    with pytest.raises(RuntimeError, match="dispatcher bug"):
        await queue.poll_once()
    assert sqs.deleted == ["h1"]


async def test_a_cancelled_round_still_deletes_what_it_delivered() -> None:
    sqs = FakeSqs([message(training_event(), "h1")], delete_delay=0.2)
    delivered: list[Update] = []
    queue = EventQueue(sqs, URL, KINDS, delivered.append)
    with anyio.move_on_after(0.05):
        await queue.poll_once()
    assert len(delivered) == 1
    assert sqs.deleted == ["h1"]


@pytest.mark.parametrize("code, words, fix", [
    ("AccessDenied", "access denied reading", "sqs:ReceiveMessage"),
    ("AWS.SimpleQueueService.NonExistentQueue", "reading the events queue", "events setup"),
    ("KMS.AccessDeniedException", "reading the events queue", "events setup"),
    ("InvalidClientTokenId", "rejected the credentials", "credentials"),
])
async def test_an_unreadable_queue_is_an_environment_problem(
    code: str, words: str, fix: str
) -> None:
    queue = EventQueue(FakeSqs(receive_error=client_error(code, "ReceiveMessage")), URL,
                       KINDS, lambda u: None)
    with pytest.raises(EventQueueError) as caught:
        await queue.run()
    assert isinstance(caught.value, EnvironmentProblem)
    assert words in caught.value.problem and code in caught.value.problem
    assert fix in caught.value.fix


async def test_a_delete_that_is_denied_is_an_environment_problem() -> None:
    sqs = FakeSqs([message(training_event(), "h1")],
                  delete_error=client_error("AccessDenied", "DeleteMessageBatch"))
    queue = EventQueue(sqs, URL, KINDS, lambda u: None)
    with pytest.raises(EventQueueError, match="deleting from the events queue"):
        await queue.poll_once()


async def test_a_bug_in_the_call_is_not_dressed_as_an_aws_problem() -> None:
    queue = EventQueue(FakeSqs(receive_error=TypeError("bad call")), URL, KINDS, lambda u: None)
    with pytest.raises(TypeError):
        await queue.poll_once()


async def test_short_polls_of_an_empty_queue_pause_between_rounds() -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 3:
            raise anyio.get_cancelled_exc_class()

    sqs = FakeSqs([message(training_event(), "h1")])
    queue = EventQueue(sqs, URL, KINDS, lambda u: None, wait_seconds=0, idle_pause=0.5,
                       sleep=sleep)
    with pytest.raises(anyio.get_cancelled_exc_class()):
        await queue.run(readers=1)
    # the first round brought a message: no pause after it
    assert pauses == [0.5, 0.5, 0.5]
    assert [op for op, _ in sqs.calls].count("ReceiveMessage") == 4


@pytest.mark.parametrize("kwargs", [{"wait_seconds": 21}, {"wait_seconds": -1},
                                    {"batch": 0}, {"batch": 11}])
def test_receive_limits_are_checked_at_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        EventQueue(FakeSqs(), URL, KINDS, lambda u: None, **kwargs)


def test_kinds_that_send_no_events_are_refused() -> None:
    with pytest.raises(ValueError, match="sends"):
        EventQueue(FakeSqs(), URL, {"model": KINDS["model"]}, lambda u: None)
