"""Origin checks (`--allowed-origins`): 403 on /ws for a foreign Origin and
for `null`; a listed Origin, or none (not a browser), is accepted."""

import pytest
import requests

from sb_client import refused_status

GOOD = "https://good.example"
ALSO = "http://also.example:8080"


@pytest.fixture(scope="module")
def origin_server():
    from conftest import Factory

    f = Factory("origins")
    srv = f("--allowed-origins", f"{GOOD},{ALSO}")
    yield srv
    f.close()


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "null", "https://good.example.evil", "http://good.example", "https://good.example:443x", ""],
)
async def test_foreign_origin_is_403(origin_server, origin):
    status = await refused_status(origin_server.ws, additional_headers={"Origin": origin})
    assert status == 403


@pytest.mark.parametrize("origin", [GOOD, ALSO, None])
async def test_listed_origin_or_none_is_accepted(origin_server, clients, origin):
    c = await clients.native(origin_server.ws, origin=origin)
    assert c.welcome["user"].startswith("anon-")
    await c.roundtrip()


async def test_any_origin_without_the_flag(anon_server, clients):
    for origin in ("https://evil.example", "null"):
        c = await clients.native(anon_server.ws, origin=origin)
        await c.roundtrip()


def test_socketio_handshake_checks_the_origin_too(origin_server):
    s = requests.Session()
    s.trust_env = False
    url = f"{origin_server.http}/socket.io/?EIO=4&transport=polling"
    for origin in ("https://evil.example", "null"):
        r = s.get(url, headers={"Origin": origin}, timeout=5)
        assert r.status_code == 403, (origin, r.status_code, r.text)
        assert r.json() == {"code": 4, "message": "Forbidden"}
    r = s.get(url, headers={"Origin": GOOD}, timeout=5)
    assert r.status_code == 200, r.text
    assert r.headers.get("Access-Control-Allow-Origin") == GOOD
    assert r.headers.get("Access-Control-Allow-Credentials") == "true"
