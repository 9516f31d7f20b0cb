"""The local cloud's pure parts: reproducible zips, API Gateway routing/mapping, SQS batch outcomes."""

from __future__ import annotations

import base64
import hashlib
import json
import zipfile
from pathlib import Path
from types import SimpleNamespace

from local_cloud.apigw_events import find_route, is_binary, match_template, proxy_response
from local_cloud.artifacts import load_manifest, write_deterministic_zip, write_manifest
from local_cloud.discovery import RouteRecord, function_arn_from_uri
from local_cloud.sqs_poller import messages_to_delete, sqs_record


def route(path: str, method: str = "POST", stage: str = "local") -> RouteRecord:
    return RouteRecord("api", "name", stage, path, method, "arn:fn", False, ())


def test_zip_is_reproducible_and_manifest_matches_lambda_hash(tmp_path: Path) -> None:
    source = tmp_path / "handler.py"
    source.write_text("x = 1\n")
    write_deterministic_zip(tmp_path / "out" / "a.zip", [("handler.py", source)])
    first = (tmp_path / "out" / "a.zip").read_bytes()
    source.touch()  # a newer mtime must not change the bytes
    write_deterministic_zip(tmp_path / "out" / "a.zip", [("handler.py", source)])
    assert (tmp_path / "out" / "a.zip").read_bytes() == first
    with zipfile.ZipFile(tmp_path / "out" / "a.zip") as archive:
        info = archive.getinfo("handler.py")
    assert info.date_time == (1980, 1, 1, 0, 0, 0)
    assert (info.external_attr >> 16) & 0o777 == 0o644
    [artifact] = write_manifest(tmp_path / "out")
    assert artifact.code_sha256 == base64.b64encode(hashlib.sha256(first).digest()).decode()
    assert load_manifest(tmp_path / "out")[artifact.code_sha256].path == "a.zip"
    assert (
        json.loads((tmp_path / "out" / "manifest.json").read_text())["artifacts"]["a.zip"]["kind"]
        == "function"
    )


def test_route_matching_prefers_literal_then_param_then_greedy() -> None:
    routes = [route("/{proxy+}", "ANY"), route("/items/{id}", "GET"), route("/items/new", "GET")]
    literal = find_route(routes, "local", "GET", "/items/new")
    assert literal is not None and literal.route.resource_path == "/items/new"
    match = find_route(routes, "local", "GET", "/items/7")
    assert match is not None and match.path_parameters == {"id": "7"}
    greedy = find_route(routes, "local", "PUT", "/a/b/c")
    assert greedy is not None and greedy.path_parameters == {"proxy": "a/b/c"}
    assert find_route(routes, "other", "GET", "/items/7") is None
    assert match_template("/", "/") == {}
    assert match_template("/whatsapp", "/whatsapp/extra") is None


def test_binary_media_types_follow_api_gateway_wildcards() -> None:
    assert is_binary("image/png", ("image/*",))
    assert is_binary("application/octet-stream; charset=x", ("application/octet-stream",))
    assert not is_binary("application/x-www-form-urlencoded", ("image/*",))
    assert not is_binary(None, ("*/*",))


def test_proxy_response_mapping() -> None:
    ok = proxy_response(
        {"statusCode": 200, "headers": {"A": "1"}, "multiValueHeaders": {"B": ["x", "y"]}, "body": "hi"}
    )
    assert ok.status == 200 and ok.body == b"hi"
    assert ("B", "x") in ok.headers and ("B", "y") in ok.headers and ("A", "1") in ok.headers
    binary = proxy_response(
        {"statusCode": 200, "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True}
    )
    assert binary.body == b"\x00\x01"
    assert proxy_response({"body": "no status"}).status == 502
    assert proxy_response("not a dict").status == 502


def test_lambda_integration_uri_yields_function_arn() -> None:
    arn = "arn:aws:lambda:eu-west-1:123456789012:function:fn"
    uri = f"arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/{arn}/invocations"
    assert function_arn_from_uri(uri) == arn
    assert function_arn_from_uri("https://example.com") is None


def test_sqs_batch_outcomes() -> None:
    messages = [{"MessageId": "a", "ReceiptHandle": "ra"}, {"MessageId": "b", "ReceiptHandle": "rb"}]
    ok = SimpleNamespace(error=None, result=None)
    partial = SimpleNamespace(error=None, result={"batchItemFailures": [{"itemIdentifier": "b"}]})
    unknown = SimpleNamespace(error=None, result={"batchItemFailures": [{"itemIdentifier": "zzz"}]})
    failed = SimpleNamespace(error={"type": "ValueError"}, result=None)
    assert messages_to_delete(messages, ok, True) == messages
    assert messages_to_delete(messages, partial, True) == [messages[0]]
    assert (
        messages_to_delete(messages, partial, False) == messages
    )  # without the response type, all succeeded
    assert messages_to_delete(messages, unknown, True) == []
    assert messages_to_delete(messages, failed, True) == []


def test_sqs_record_shape() -> None:
    message = {
        "MessageId": "m",
        "ReceiptHandle": "r",
        "Body": "b",
        "MD5OfBody": "md5",
        "Attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1", "Unrelated": "x"},
        "MessageAttributes": {"k": {"DataType": "String", "StringValue": "v"}},
    }
    record = sqs_record(message, "arn:aws:sqs:eu-west-1:1:q", "eu-west-1")
    assert record["attributes"] == {"ApproximateReceiveCount": "1", "SentTimestamp": "1"}
    assert record["messageAttributes"]["k"] == {
        "stringValue": "v",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }
    assert (record["eventSource"], record["eventSourceARN"], record["awsRegion"]) == (
        "aws:sqs",
        "arn:aws:sqs:eu-west-1:1:q",
        "eu-west-1",
    )
