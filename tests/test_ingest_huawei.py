"""Huawei readers on small fixture files written to the documented schema (sir-lab/data-release).

The real data is hosted outside GitHub and is not on these machines; every file here is a
fixture with a few rows in the release's column layout.
"""

import gzip
import json
import zipfile
from pathlib import Path

import pytest
from conftest import ingest_one, invoke, store_rows, store_state

COLDSTART_HEADER = (
    "day,time,clusterName,funcName,userID,requestID,totalCost_cold_start,podAllocationCost,"
    "deployCodeCost,deployDependencyCost,schedulingCost,podID"
)
COLDSTART_ROWS = [
    "0,0.104,1,332,439,5d990e04,0.911090,0.000590,0.001,0.000,0.909500,pool22-300-128-0006319574",
    "0,51937.425,2,10,134,82f1aa19,2.239314,0.027161815,0.045,0.454,1.713152185,"
    "pool24-600-512-0000577863",
    "30,2678350.991,3,224,201,db34396a,6.913106,0.027074,0.002,4.322,2.562032,"
    "pool35-6600-8192-0000463009",
]
REQUEST_HEADER = (
    "time_worker,time_frontend,requestID,clusterName,funcName,podID,userID,totalCost_worker,"
    "workerCost,runtimeCost,totalCost_frontend,frontendCost,busCost,readBodyCost,writeRspCost,"
    "cpu_usage,memory_usage,requestBodySize"
)
REQUEST_ROWS = [
    "2600186.994,2600186.995,763ff09a,1,296,pool22-300-128-0000618412,224,0.023749,0.000112,"
    "0.023637,0.026421,0.000364,0.001994,0.000016,0.000006,0.291506,32.308594,1018",
    "2600190.5,2600190.25,91ab,4,400,pool26-1000-1024-0000000007,418,0.5,0.1,0.4,0.61,0.01,"
    "0.05,0.001,0.001,0.9,64.5,20",
]


def fixture(path: Path, header: str, rows: list[str], gz: bool = False) -> Path:
    """Write a fixture CSV (gzipped when asked) and return its path."""
    text = "\n".join([header, *rows]) + "\n"
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


# --- huawei-coldstart ------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_coldstart_columns(db_path: Path, tmp_path: Path, gz: bool) -> None:
    name = "R1_day.csv.gz" if gz else "R1_day.csv"
    path = fixture(tmp_path / name, COLDSTART_HEADER, COLDSTART_ROWS, gz)
    info = ingest_one(db_path, path)
    assert (info["format"], info["table"], info["rows"], info["series"]) == (
        "huawei-coldstart",
        "cold_starts",
        3,
        3,
    )
    assert info["span_s"] == pytest.approx(2678350.991 - 0.104)
    got = store_rows(
        db_path,
        "SELECT time_s, series, pool, cluster, total_s, pod_allocation_s, deploy_code_s, "
        "deploy_dependency_s, scheduling_s, model_load_s, cpu_millicores, memory_mb, pod_id, "
        "request_id, kind FROM cold_starts ORDER BY time_s",
    )
    assert got == [
        (
            0.104,
            "332---439---pool22-300-128",
            "pool22-300-128",
            "1",
            0.911090,
            0.000590,
            0.001,
            0.0,
            0.909500,
            None,
            300,
            128,
            "pool22-300-128-0006319574",
            "5d990e04",
            None,
        ),
        (
            51937.425,
            "10---134---pool24-600-512",
            "pool24-600-512",
            "2",
            2.239314,
            0.027161815,
            0.045,
            0.454,
            1.713152185,
            None,
            600,
            512,
            "pool24-600-512-0000577863",
            "82f1aa19",
            None,
        ),
        (
            2678350.991,
            "224---201---pool35-6600-8192",
            "pool35-6600-8192",
            "3",
            6.913106,
            0.027074,
            0.002,
            4.322,
            2.562032,
            None,
            6600,
            8192,
            "pool35-6600-8192-0000463009",
            "db34396a",
            None,
        ),
    ]


def test_coldstart_folder_zip_and_odd_pods(db_path: Path, tmp_path: Path) -> None:
    region = tmp_path / "R2"
    region.mkdir()
    fixture(region / "day_00.csv", COLDSTART_HEADER, COLDSTART_ROWS[:2])
    odd = "1,90000.5,1,7,8,ffff,0.5,0.1,0.1,0.1,0.2,custom-pod-name"
    fixture(region / "day_01.csv.gz", COLDSTART_HEADER, [COLDSTART_ROWS[2], odd], gz=True)
    info = ingest_one(db_path, region)
    assert (info["name"], info["format"], info["rows"]) == ("R2", "huawei-coldstart", 4)
    got = store_rows(db_path, "SELECT series, pool, cpu_millicores, memory_mb FROM cold_starts")
    assert ("7---8", None, None, None) in got
    archive = tmp_path / "R2.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(region.iterdir()):
            zf.write(path, f"R2/{path.name}")
    again = ingest_one(db_path, archive, "--name", "R2-zip")
    assert (again["status"], again["name"]) == ("unchanged", "R2")


def test_coldstart_errors_name_file_and_line(db_path: Path, tmp_path: Path) -> None:
    good = fixture(tmp_path / "good.csv", COLDSTART_HEADER, COLDSTART_ROWS)
    ingest_one(db_path, good)
    before = store_state(db_path)
    bad_row = COLDSTART_ROWS[1].replace("2.239314", "-2.2")
    region = tmp_path / "R3"
    region.mkdir()
    fixture(region / "day_00.csv", COLDSTART_HEADER, [COLDSTART_ROWS[0]])
    fixture(region / "day_01.csv", COLDSTART_HEADER, [COLDSTART_ROWS[0], bad_row])
    result = invoke("ingest", region, "--db", db_path)
    assert result.exit_code == 1
    assert f"{region / 'day_01.csv'}: line 3: negative value in total_s" in result.stderr
    lacking = fixture(tmp_path / "lacking.csv", "day,time,funcName", ["0,1.0,5"])
    result = invoke("ingest", lacking, "--format", "huawei-coldstart", "--db", db_path)
    assert result.exit_code == 1
    assert "'totalCost_cold_start' missing for format huawei-coldstart" in result.stderr
    assert "expected columns: time, funcName, totalCost_cold_start" in result.stderr
    archive = tmp_path / "R4.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(good, "R4/day_00.csv")
        zf.write(lacking, "R4/day_01.csv")
    result = invoke("ingest", archive, "--format", "huawei-coldstart", "--db", db_path)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"error: {archive}:R4/day_01.csv: column 'totalCost_cold_start'"
    )
    assert store_state(db_path) == before


# --- huawei-requests -------------------------------------------------------------------------
@pytest.mark.parametrize("gz", [False, True])
def test_request_columns(db_path: Path, tmp_path: Path, gz: bool) -> None:
    path = fixture(
        tmp_path / ("R1_req.csv.gz" if gz else "R1_req.csv"), REQUEST_HEADER, REQUEST_ROWS, gz
    )
    info = ingest_one(db_path, path)
    assert (info["format"], info["table"], info["rows"], info["series"]) == (
        "huawei-requests",
        "requests",
        2,
        2,
    )
    got = store_rows(
        db_path,
        "SELECT arrival_s, series, duration_s, pod_id, input_tokens, output_tokens, session_id, "
        "ok FROM requests ORDER BY arrival_s",
    )
    assert got == [
        (
            2600186.995,
            "296---224---pool22-300-128",
            0.026421,
            "pool22-300-128-0000618412",
            None,
            None,
            None,
            True,
        ),
        (
            2600190.25,
            "400---418---pool26-1000-1024",
            0.61,
            "pool26-1000-1024-0000000007",
            None,
            None,
            None,
            True,
        ),
    ]


def test_request_bad_time_names_line(db_path: Path, tmp_path: Path) -> None:
    bad = REQUEST_ROWS[1].replace("2600190.25", "soon", 1)
    path = fixture(tmp_path / "req.csv", REQUEST_HEADER, [REQUEST_ROWS[0], bad])
    result = invoke("ingest", path, "--db", db_path)
    assert result.exit_code == 1
    assert "req.csv: line 3: column 'time_frontend'" in result.stderr


# --- huawei-series ---------------------------------------------------------------------------
def test_series_long_per_minute(db_path: Path, tmp_path: Path) -> None:
    path = fixture(
        tmp_path / "R1_series.csv.gz",
        "funcID,time,requests,num_cold_starts,num_pods,busCost_avg",
        [
            "400---418---pool22-300-128,0,12,1,1,0.002",
            "400---418---pool22-300-128,60,30,0,2,0.001",
            "296---224---pool22-300-128,180,6,0,1,0.003",
        ],
        gz=True,
    )
    info = ingest_one(db_path, path)
    assert (info["format"], info["table"], info["rows"], info["series"]) == (
        "huawei-series",
        "rate_windows",
        3,
        2,
    )
    assert info["span_s"] == 240.0
    got = store_rows(
        db_path,
        "SELECT series, window_start_s, window_s, requests, rate_rps, cold_starts, pods, cv "
        "FROM rate_windows ORDER BY window_start_s",
    )
    assert got == [
        ("400---418---pool22-300-128", 0.0, 60.0, 12.0, 0.2, 1.0, 1.0, None),
        ("400---418---pool22-300-128", 60.0, 60.0, 30.0, 0.5, 0.0, 2.0, None),
        ("296---224---pool22-300-128", 180.0, 60.0, 6.0, 0.1, 0.0, 1.0, None),
    ]


@pytest.mark.parametrize(
    ("header", "data", "start", "window"),
    [
        ("funcName,minute,num_requests", ["7,3,120", "7,4,60"], 180.0, 60.0),
        ("function,timestamp,count", ["7,10,120", "7,11,60"], 10.0, 1.0),
    ],
)
def test_series_long_column_variants(
    db_path: Path, tmp_path: Path, header: str, data: list[str], start: float, window: float
) -> None:
    info = ingest_one(db_path, fixture(tmp_path / "s.csv", header, data))
    assert info["format"] == "huawei-series"
    got = store_rows(
        db_path, "SELECT series, window_start_s, window_s, requests, rate_rps FROM rate_windows"
    )
    assert sorted(got)[0] == ("7", start, window, 120.0, 120.0 / window)


def test_series_2023_wide_unpivot(db_path: Path, tmp_path: Path) -> None:
    days = tmp_path / "requests_minute"
    days.mkdir()
    fixture(days / "day_00.csv", "day,time,0,1,2,3", ["0,0,,,,6772", "0,60,,5,2.0,7244"])
    fixture(days / "day_01.csv.gz", "day,time,0,1,2,3", ["1,86400,1,,,0"], gz=True)
    info = ingest_one(db_path, days)
    assert (info["format"], info["rows"], info["series"]) == ("huawei-series", 6, 4)
    got = store_rows(
        db_path,
        "SELECT series, window_start_s, window_s, requests, rate_rps FROM rate_windows "
        "ORDER BY window_start_s, series",
    )
    assert got == [
        ("3", 0.0, 60.0, 6772.0, pytest.approx(6772 / 60)),
        ("1", 60.0, 60.0, 5.0, pytest.approx(5 / 60)),
        ("2", 60.0, 60.0, 2.0, pytest.approx(2 / 60)),
        ("3", 60.0, 60.0, 7244.0, pytest.approx(7244 / 60)),
        ("0", 86400.0, 60.0, 1.0, pytest.approx(1 / 60)),
        ("3", 86400.0, 60.0, 0.0, 0.0),
    ]


def test_series_2023_per_second_and_negative(db_path: Path, tmp_path: Path) -> None:
    path = fixture(tmp_path / "sec.csv", "time,0,1", ["100,1,2", "101,0,3", "102,4,"])
    ingest_one(db_path, path)
    assert store_rows(db_path, "SELECT DISTINCT window_s FROM rate_windows") == [(1.0,)]
    before = store_state(db_path)
    bad = fixture(tmp_path / "bad.csv", "time,0,1", ["100,1,2", "101,0,3", "102,-4,1"])
    result = invoke("ingest", bad, "--db", db_path)
    assert result.exit_code == 1
    assert "bad.csv: line 4: negative value in requests" in result.stderr
    assert store_state(db_path) == before


def test_detection_is_strict(db_path: Path, tmp_path: Path) -> None:
    for header in ("timestamp,input,output", "time,alpha,1"):
        path = fixture(tmp_path / "x.csv", header, ["1,2,3"])
        result = invoke("ingest", path, "--db", db_path)
        assert result.exit_code == 1 and "unknown format" in result.stderr
    result = invoke("ingest", path, "--format", "huawei-series", "--db", db_path, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)[0]["series"] == 2
