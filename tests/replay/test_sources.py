"""Replay reads a request log from a data directory, a directory of Parquet files, or an S3
prefix (a real S3 API: moto's server on 127.0.0.1), with the same result.

The log is a real `llmgw serve`'s: a virtual key with a budget of its own that runs out, an
exact cache with hits, two routes, driven by the official `openai` SDK.
"""

from __future__ import annotations

import contextlib
import shutil

import duckdb
import httpx
import openai
import pandas as pd
import pytest
from conftest import UPSTREAM_KEY, Gateway

from llmgw_kernel import open_log, replay
from llmgw_kernel.log.schema import COLUMNS
from llmgw_kernel.log.segments import log_dir, segment_name
from llmgw_kernel.replay.engines import replay_partitioned
from llmgw_kernel.replay.sources import dedupe_segments, open_source

ADMIN = "admin-token-replay-sources"
PRICE = {"input_per_1m": 1000.0, "output_per_1m": 1000.0}  # $0.018 per request of the fake


@pytest.fixture(scope="module")
def served(upstream, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sources")
    target = {"provider": "local", "model": "gpt-4o-mini"}
    doc = {
        "providers": {"local": {"kind": "openai", "base_url": upstream.base_url, "api_key_env": "LOCAL_API_KEY"}},
        "routes": {"chat": {"targets": [target]}, "cached": {"targets": [target], "cache": {"exact": {"ttl_s": 600}}}},
        "pricing": {"gpt-4o-mini": PRICE},
        "log": {"flush_ms": 50},
    }
    gw = Gateway(tmp, doc, {"LLMGW_ADMIN_TOKEN": ADMIN, "LOCAL_API_KEY": UPSTREAM_KEY})
    try:
        keys = {}
        for name, settings in {"capped": {"team": "a", "budget_usd": 0.1}, "free": {"team": "b"}}.items():
            r = httpx.post(f"{gw.url}/admin/virtual-keys", json={"name": name, **settings},
                           headers={"Authorization": f"Bearer {ADMIN}"}, timeout=10)  # fmt: skip
            assert r.status_code == 201, r.text
            keys[name] = openai.OpenAI(base_url=gw.base_url, api_key=r.json()["key"], max_retries=0)
        for i in range(60):
            client = keys["capped" if i % 2 else "free"]
            with contextlib.suppress(openai.APIStatusError):  # refused by the key's budget: logged too
                client.chat.completions.create(
                    model=("chat", "cached")[i % 3 == 0], messages=[{"role": "user", "content": f"q{i % 4}"}]
                )
        for c in keys.values():
            c.close()
    finally:
        gw.terminate()
    return gw


def _same(a, b) -> None:
    pd.testing.assert_frame_equal(a.decisions, b.decisions, check_exact=True)
    assert a.summary == b.summary


def test_the_log_has_refusals_and_hits(served):
    con = open_log(served.data_dir)
    assert con.execute("SELECT count(*) FROM requests WHERE admission = 'budget_exceeded'").fetchone()[0] > 5
    assert con.execute("SELECT count(*) FROM requests WHERE cache = 'hit'").fetchone()[0] > 3


def test_a_directory_of_parquet_files_replays_as_the_data_directory(served, tmp_path):
    copy = tmp_path / "segments"
    shutil.copytree(log_dir(served.data_dir), copy)
    # a copy taken mid-merge holds a merged segment beside its inputs: each row is read once
    con = open_log(served.data_dir)
    merged = copy / segment_name(1, 999_999)
    con.execute(f"COPY (SELECT * FROM requests) TO '{merged}' (FORMAT parquet)")
    live = replay(served.policy_path, served.data_dir)
    assert live.compare_to_log() == 0
    from_files = replay(served.policy_path, open_source(copy, key_history=served.data_dir))
    _same(live, from_files)
    assert open_source(copy).execute("SELECT count(*) FROM requests").fetchone()[0] == 60


def test_without_the_key_history_keys_own_budgets_are_not_replayed(served, tmp_path):
    copy = tmp_path / "segments"
    shutil.copytree(log_dir(served.data_dir), copy)
    bare = replay(served.policy_path, open_source(copy))
    assert bare.summary["differs_from_log"]["limits"] > 0  # the capped key's refusals are not replayed
    assert replay(served.policy_path, open_source(copy, key_history=served.data_dir)).compare_to_log() == 0


def test_a_column_no_file_has_reads_as_null_of_its_type(tmp_path):
    (tmp_path / "old").mkdir()
    duckdb.sql(
        "COPY (SELECT 'req_1' AS request_id, TIMESTAMPTZ '2026-11-02 08:00:00+00' AS ts, 'chat' AS route)"
        f" TO '{tmp_path / 'old' / 'seg-0000000000000001-0000000000000001.parquet'}' (FORMAT parquet)"
    )
    con = open_source(tmp_path / "old")
    types = {name: typ for name, typ, *_ in con.execute("DESCRIBE requests").fetchall()}
    assert list(types) == [name for name, _, _ in COLUMNS]
    assert types["embedding"] == "FLOAT[]" and types["metadata"] == "JSON" and types["key_version"] == "INTEGER"
    assert con.execute("SELECT request_id, team, admitted_ts FROM requests").fetchall() == [("req_1", None, None)]


def test_dedupe_keeps_the_widest_segment():
    names = [segment_name(1, 1), segment_name(2, 2), segment_name(1, 2), segment_name(3, 3)]
    assert dedupe_segments(names) == [segment_name(1, 2), segment_name(3, 3)]


@pytest.fixture(scope="module")
def s3(served):
    """A local S3 server (moto) holding the served log's segments under s3://llmgw-logs/prod/."""
    moto_server = pytest.importorskip("moto.server", reason="moto is not installed (the dev extra)")
    boto3 = pytest.importorskip("boto3")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    opts = {
        "key": "testing",
        "secret": "testing",
        "endpoint_url": endpoint,
        "client_kwargs": {"region_name": "us-east-1"},
    }
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")  # fmt: skip
    client.create_bucket(Bucket="llmgw-logs")
    for path in sorted(log_dir(served.data_dir).glob("seg-*.parquet")):
        client.upload_file(str(path), "llmgw-logs", f"prod/log/requests/{path.name}")
    yield endpoint, opts
    server.stop()


def test_replay_from_s3_equals_replay_from_the_directory(served, s3):
    _, opts = s3
    live = replay(served.policy_path, served.data_dir)
    con = open_source("s3://llmgw-logs/prod", storage_options=opts, key_history=served.data_dir)
    _same(live, replay(served.policy_path, con))
    parted = replay_partitioned(
        served.policy_path, "s3://llmgw-logs/prod", partitions=2, storage_options=opts, key_history=served.data_dir
    )
    assert parted.summary["partitioning"]["partitions"] == 2
    pd.testing.assert_frame_equal(parted.decisions, live.decisions, check_exact=True)


def test_s3_credentials_and_endpoint_from_the_environment(served, s3, monkeypatch):
    endpoint, _ = s3
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_ENDPOINT_URL": endpoint, "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(k, v)
    con = open_source("s3://llmgw-logs/prod")
    assert con.execute("SELECT count(*), count(DISTINCT key_id) FROM requests").fetchone() == (60, 2)
    assert open_source("s3://llmgw-logs/nothing-here").execute("SELECT count(*) FROM requests").fetchone() == (0,)
