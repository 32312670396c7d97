"""Tests for fetch_kaggle, with fake Kaggle clients only (no network)."""

from __future__ import annotations

import io
import json
import socket
import sys
import traceback
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from noisy_mnist import N_PIXELS
from noisy_mnist.data import (
    DataFormatError,
    KaggleDownloadError,
    fetch_kaggle,
    read_kaggle_csv,
)

COMPETITION = "digit-recognizer"
SECRET = "some-secret-value"
HEX_KEY = "0123456789abcdef0123456789abcdef"  # shaped like a real Kaggle key
PIXEL_NAMES = [f"pixel{i}" for i in range(N_PIXELS)]


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Make any attempt to open a connection fail loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError("tests must not use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture(autouse=True)
def home(monkeypatch, tmp_path) -> Path:
    """An empty home folder and no Kaggle variables: no credentials anywhere."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for variable in (
        "KAGGLE_USERNAME",
        "KAGGLE_KEY",
        "KAGGLE_API_TOKEN",
        "KAGGLE_CONFIG_DIR",
        "XDG_CONFIG_HOME",
    ):
        monkeypatch.delenv(variable, raising=False)
    return home


@pytest.fixture
def credentials(monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "tester")
    monkeypatch.setenv("KAGGLE_KEY", SECRET)


@pytest.fixture
def dest(tmp_path) -> Path:
    return tmp_path / "data" / "raw"


def digits(n_rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n_rows, N_PIXELS), dtype=np.uint8)
    return images, rng.integers(0, 10, size=n_rows, dtype=np.uint8)


TRAIN_IMAGES, TRAIN_LABELS = digits(6, seed=1)
TEST_IMAGES, _ = digits(4, seed=2)


def train_text(images=TRAIN_IMAGES, labels=TRAIN_LABELS) -> str:
    rows = [
        ",".join(map(str, [label, *row]))
        for label, row in zip(labels, images, strict=True)
    ]
    return "\n".join([",".join(["label", *PIXEL_NAMES]), *rows]) + "\n"


def test_text(images=TEST_IMAGES) -> str:
    rows = [",".join(map(str, row)) for row in images]
    return "\n".join([",".join(PIXEL_NAMES), *rows]) + "\n"


test_text.__test__ = False  # a helper, not a test


def competition_zip(members: dict[str, str] | None = None) -> bytes:
    if members is None:
        members = {
            "sample_submission.csv": "ImageId,Label\n1,0\n",
            "test.csv": test_text(),
            "train.csv": train_text(),
        }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(name, text)
    return buffer.getvalue()


class FakeKaggleApi:
    """Stands in for kaggle's KaggleApi: same two methods, scripted behaviour."""

    def __init__(self, download=None, authenticate=None):
        self._download = download or writes(competition_zip())
        self._authenticate = authenticate
        self.calls: list = []

    def authenticate(self):
        self.calls.append("authenticate")
        if self._authenticate is not None:
            self._authenticate()

    def competition_download_files(self, competition, path=None, quiet=False):
        self.calls.append(("download", competition, path, quiet))
        self._download(Path(path), competition)


def writes(content: bytes):
    def download(folder: Path, competition: str) -> None:
        (folder / f"{competition}.zip").write_bytes(content)

    return download


def raises(error: BaseException):
    def act(*args) -> None:
        raise error

    return act


class ApiException(Exception):
    """Shaped like kaggle.rest.ApiException: the status is an attribute."""

    def __init__(self, status: int, reason: str):
        super().__init__(f"({status})\nReason: {reason}")
        self.status = status
        self.reason = reason


class HTTPError(OSError):
    """Shaped like requests.HTTPError: an OSError carrying the response."""

    def __init__(self, status: int, message: str = ""):
        super().__init__(message or f"{status} Client Error for url")
        self.response = types.SimpleNamespace(status_code=status)


class StatusCodeError(Exception):
    def __init__(self, status: int):
        super().__init__("request failed")
        self.status_code = status


class ChunkedEncodingError(Exception):
    """Named like the requests error raised when a stream breaks mid-way."""


class MaxRetryError(Exception):
    """Named like urllib3's error when no connection could be made."""


def assert_nothing_left(folder: Path) -> None:
    """No final file, no temporary file or folder left behind."""
    assert not folder.exists() or list(folder.iterdir()) == []


# -- success ------------------------------------------------------------------------


def test_success_with_environment_credentials(credentials, dest):
    api = FakeKaggleApi()
    paths = fetch_kaggle(dest, api=api)
    assert paths == [dest / "train.csv", dest / "test.csv"]
    assert sorted(p.name for p in dest.iterdir()) == ["test.csv", "train.csv"]
    images, labels = read_kaggle_csv(dest / "train.csv")
    np.testing.assert_array_equal(images, TRAIN_IMAGES)
    np.testing.assert_array_equal(labels, TRAIN_LABELS)
    test_images, _ = read_kaggle_csv(dest / "test.csv", kind="test")
    np.testing.assert_array_equal(test_images, TEST_IMAGES)

    assert api.calls[0] == "authenticate"
    _, competition, download_path, quiet = api.calls[1]
    assert competition == COMPETITION and quiet is True
    assert Path(download_path).parent == dest  # temporary folder inside dest


def test_success_with_kaggle_json(home, dest):
    (home / ".kaggle").mkdir()
    (home / ".kaggle" / "kaggle.json").write_text(
        json.dumps({"username": "tester", "key": HEX_KEY})
    )
    assert len(fetch_kaggle(dest, api=FakeKaggleApi())) == 2


def test_success_with_kaggle_config_dir(monkeypatch, tmp_path, dest):
    config = tmp_path / "elsewhere"
    config.mkdir()
    (config / "kaggle.json").write_text("{}")
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    assert len(fetch_kaggle(dest, api=FakeKaggleApi())) == 2


def test_success_replaces_previous_files(credentials, dest):
    dest.mkdir(parents=True)
    (dest / "train.csv").write_text("old\n")
    fetch_kaggle(dest, api=FakeKaggleApi())
    np.testing.assert_array_equal(read_kaggle_csv(dest / "train.csv")[1], TRAIN_LABELS)


def test_official_client_is_imported_lazily(credentials, dest, monkeypatch):
    module = types.ModuleType("kaggle.api.kaggle_api_extended")
    module.KaggleApi = FakeKaggleApi
    monkeypatch.setitem(sys.modules, "kaggle", types.ModuleType("kaggle"))
    monkeypatch.setitem(sys.modules, "kaggle.api", types.ModuleType("kaggle.api"))
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", module)
    assert len(fetch_kaggle(dest)) == 2


# -- refused before any download ----------------------------------------------------


def test_no_credentials(home, dest):
    api = FakeKaggleApi()
    with pytest.raises(KaggleDownloadError, match="no Kaggle API credentials") as info:
        fetch_kaggle(dest, api=api)
    message = str(info.value)
    assert str(home / ".kaggle" / "kaggle.json") in message
    assert "KAGGLE_USERNAME" in message and "KAGGLE_KEY" in message
    assert "data.source: csv" in message
    assert api.calls == []
    assert_nothing_left(dest)


def test_username_without_key_is_not_enough(monkeypatch, dest):
    monkeypatch.setenv("KAGGLE_USERNAME", "tester")
    with pytest.raises(KaggleDownloadError, match="kaggle.json"):
        fetch_kaggle(dest, api=FakeKaggleApi())


def test_kaggle_package_missing(credentials, dest, monkeypatch):
    for module in ("kaggle", "kaggle.api", "kaggle.api.kaggle_api_extended"):
        monkeypatch.setitem(sys.modules, module, None)  # makes the import fail
    with pytest.raises(KaggleDownloadError, match="pip install kaggle"):
        fetch_kaggle(dest)
    assert_nothing_left(dest)


def test_kaggle_client_exits_while_loading(credentials, dest, monkeypatch):
    module = types.ModuleType("kaggle.api.kaggle_api_extended")

    class ExitingApi:
        def __init__(self):
            raise SystemExit("Could not find kaggle.json")

    module.KaggleApi = ExitingApi
    monkeypatch.setitem(sys.modules, "kaggle", types.ModuleType("kaggle"))
    monkeypatch.setitem(sys.modules, "kaggle.api", types.ModuleType("kaggle.api"))
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", module)
    with pytest.raises(KaggleDownloadError, match="failed while loading"):
        fetch_kaggle(dest)


def test_authenticate_exits(credentials, dest):
    api = FakeKaggleApi(authenticate=raises(SystemExit(1)))
    with pytest.raises(KaggleDownloadError, match="failed while authenticating"):
        fetch_kaggle(dest, api=api)
    assert_nothing_left(dest)


# -- HTTP errors --------------------------------------------------------------------


def status_errors(status: int) -> list:
    return [
        ApiException(status, "Unauthorized" if status == 401 else "Forbidden"),
        HTTPError(status),
        StatusCodeError(status),
        Exception(f"{status} Client Error: for url: https://www.kaggle.com/api/v1/"),
    ]


@pytest.mark.parametrize(
    "error", status_errors(401), ids=lambda error: type(error).__name__
)
def test_rejected_credentials(credentials, dest, error):
    with pytest.raises(KaggleDownloadError) as info:
        fetch_kaggle(dest, api=FakeKaggleApi(download=raises(error)))
    assert "rejected the credentials (HTTP 401" in str(info.value)
    assert "create a new API token" in str(info.value)
    assert_nothing_left(dest)


@pytest.mark.parametrize(
    "error", status_errors(403), ids=lambda error: type(error).__name__
)
def test_competition_rules_not_accepted(credentials, dest, error):
    with pytest.raises(KaggleDownloadError) as info:
        fetch_kaggle(dest, api=FakeKaggleApi(download=raises(error)))
    message = str(info.value)
    assert "HTTP 403" in message
    assert "accept the rules at" in message and "then rerun" in message
    assert f"https://www.kaggle.com/competitions/{COMPETITION}/rules" in message
    assert_nothing_left(dest)


def test_unknown_competition(credentials, dest):
    api = FakeKaggleApi(download=raises(ApiException(404, "Not Found")))
    with pytest.raises(KaggleDownloadError, match="no competition 'digit-recognize'"):
        fetch_kaggle(dest, competition="digit-recognize", api=api)
    assert_nothing_left(dest)


def test_server_error(credentials, dest):
    api = FakeKaggleApi(download=raises(HTTPError(503, "Service Unavailable")))
    with pytest.raises(KaggleDownloadError, match="HTTP 503; rerun later"):
        fetch_kaggle(dest, api=api)


# -- network and broken downloads ---------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("Connection refused"),
        TimeoutError("timed out"),
        socket.gaierror(-3, "Temporary failure in name resolution"),
        MaxRetryError("Max retries exceeded with url"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_network_down(credentials, dest, error):
    with pytest.raises(KaggleDownloadError) as info:
        fetch_kaggle(dest, api=FakeKaggleApi(download=raises(error)))
    assert "could not reach Kaggle" in str(info.value)
    assert "use data.source: csv with a local copy, or" in str(info.value)
    assert_nothing_left(dest)


def test_download_cut_short(credentials, dest):
    whole = competition_zip()
    api = FakeKaggleApi(download=writes(whole[: len(whole) // 2]))
    with pytest.raises(KaggleDownloadError, match="download incomplete"):
        fetch_kaggle(dest, api=api)
    assert_nothing_left(dest)


def test_connection_broken_during_download(credentials, dest):
    def download(folder: Path, competition: str) -> None:
        whole = competition_zip()
        (folder / f"{competition}.zip").write_bytes(whole[:1000])
        raise ChunkedEncodingError("Connection broken: IncompleteRead")

    with pytest.raises(KaggleDownloadError, match="download incomplete"):
        fetch_kaggle(dest, api=FakeKaggleApi(download=download))
    assert_nothing_left(dest)


def test_download_with_corrupted_member(credentials, dest):
    content = bytearray(competition_zip({"train.csv": train_text() * 3}))
    content[200] ^= 0xFF  # inside the compressed data: the CRC check fails
    with pytest.raises(KaggleDownloadError, match="download incomplete"):
        fetch_kaggle(dest, api=FakeKaggleApi(download=writes(bytes(content))))
    assert_nothing_left(dest)


def test_client_writes_nothing(credentials, dest):
    api = FakeKaggleApi(download=lambda folder, competition: None)
    with pytest.raises(KaggleDownloadError, match="wrote no digit-recognizer.zip"):
        fetch_kaggle(dest, api=api)
    assert_nothing_left(dest)


def test_archive_without_test_csv(credentials, dest):
    content = competition_zip({"train.csv": train_text()})
    with pytest.raises(KaggleDownloadError, match="has no test.csv"):
        fetch_kaggle(dest, api=FakeKaggleApi(download=writes(content)))
    assert_nothing_left(dest)


# -- downloaded files that fail validation ------------------------------------------


def test_bad_train_csv_in_download(credentials, dest):
    lines = train_text().splitlines()
    cells = lines[2].split(",")
    cells[6] = "300"  # pixel5 on line 3
    lines[2] = ",".join(cells)
    content = competition_zip({"train.csv": "\n".join(lines), "test.csv": test_text()})
    with pytest.raises(
        DataFormatError,
        match=r"downloaded digit-recognizer.zip:train.csv line 3, column pixel5: "
        r"value 300 is out of range 0-255",
    ):
        fetch_kaggle(dest, api=FakeKaggleApi(download=writes(content)))
    assert_nothing_left(dest)


def test_bad_test_csv_in_download_keeps_nothing(credentials, dest):
    truncated_test = test_text()[:-200]
    content = competition_zip({"train.csv": train_text(), "test.csv": truncated_test})
    with pytest.raises(DataFormatError, match=r"test.csv line 5 has \d+ fields"):
        fetch_kaggle(dest, api=FakeKaggleApi(download=writes(content)))
    assert_nothing_left(dest)


def test_failed_download_keeps_previous_files(credentials, dest):
    fetch_kaggle(dest, api=FakeKaggleApi())
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    whole = competition_zip({"train.csv": "label\n", "test.csv": "x\n"})
    with pytest.raises(KaggleDownloadError):
        fetch_kaggle(dest, api=FakeKaggleApi(download=writes(whole[:50])))
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before


# -- credentials never leak ---------------------------------------------------------


def leaking_failures() -> list:
    """Client failures whose own messages contain the key."""
    return [
        ("authenticate", ValueError(f"could not use key {SECRET}")),
        ("authenticate", SystemExit(f"bad credentials {SECRET}")),
        ("download", ApiException(401, f"Unauthorized key={SECRET}")),
        ("download", HTTPError(403, f"403 Forbidden for url ?key={SECRET}")),
        ("download", ConnectionError(f"proxy refused tester:{SECRET}@proxy")),
        ("download", RuntimeError(f"unexpected answer for {SECRET}")),
        ("download", RuntimeError(f"unexpected answer for {HEX_KEY}")),
    ]


@pytest.mark.parametrize(("stage", "error"), leaking_failures())
def test_credentials_never_in_messages(credentials, dest, stage, error):
    if stage == "authenticate":
        api = FakeKaggleApi(authenticate=raises(error))
    else:
        api = FakeKaggleApi(download=raises(error))
    with pytest.raises(KaggleDownloadError) as info:
        fetch_kaggle(dest, api=api)
    shown = "".join(traceback.format_exception(info.value)) + repr(info.value)
    assert SECRET not in shown
    assert HEX_KEY not in shown
    assert_nothing_left(dest)


def test_no_credentials_message_does_not_show_a_partial_key(monkeypatch, dest):
    monkeypatch.setenv("KAGGLE_KEY", SECRET)  # a key without a username
    with pytest.raises(KaggleDownloadError) as info:
        fetch_kaggle(dest, api=FakeKaggleApi())
    assert SECRET not in "".join(traceback.format_exception(info.value))
