"""keck_tui.common.urls: one URL rule (scheme, host, port, no credentials) and origins."""
from __future__ import annotations

import pytest

from keck_tui.common.urls import Origin, UrlError, check_url, origin, redact, resolve_same_origin, same_origin


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9464", "https://n1.example:9464/", "http://[::1]:9464/api", "HTTPS://Node.Example",
    "http://[fe80::1%25eth0]:9464", "http://h:65535", "http://h:1", "http://h/path?x=1#f", "http://h:",
])
def test_usable_urls_pass_unchanged(url):
    assert check_url(url, "agent URL") == url


@pytest.mark.parametrize("url", [
    "http://", "https://", "http://:80", "http:///path", "ftp://h", "h:9464", "", "http//h", "file:///etc/passwd",
    "http://::1:9464", "http://[::1", "http://a b", "http://h\n.x", "http://h\t", " http://h", "http://h\x7f",
])
def test_no_host_bad_scheme_bad_chars_refused(url):
    with pytest.raises(UrlError) as e:
        check_url(url, "agent URL")
    msg = str(e.value)
    assert msg.startswith("agent URL: ") and "\n" not in msg
    assert "not an http(s) URL" in msg and "must start with http:// or https:// and name a host" in msg


@pytest.mark.parametrize("url", ["http://h:0", "http://h:65536", "http://h:99999", "http://h:abc", "http://h:-1",
                                 "http://[::1]:70000"])
def test_bad_ports_refused(url):
    with pytest.raises(UrlError, match=r"^--keck: bad port in .* \(a number from 1 to 65535\)$"):
        check_url(url, "--keck")


@pytest.mark.parametrize("url", ["http://admin:s3cret@bmc", "https://admin@bmc:443", "http://:s3cret@bmc",
                                 "http://@bmc", "http://admin:s3cret@"])
def test_credentials_refused_without_echo(url):
    with pytest.raises(UrlError) as e:
        check_url(url, "--kubelet", credentials_hint="the service-account token is sent when present")
    msg = str(e.value)
    assert msg == ("--kubelet: credentials in the URL are refused (they show in ps and in snapshots); "
                   "the service-account token is sent when present")
    assert "s3cret" not in msg and "admin" not in msg


def test_bad_url_with_credentials_is_not_echoed_even_in_other_errors():
    with pytest.raises(UrlError) as e:
        check_url("ftp://admin:s3cret@h", "x")
    assert "s3cret" not in str(e.value)
    assert redact("https://u:p@h:1/x@y") == "https://***@h:1/x@y"
    assert redact("no scheme") == "no scheme"


def test_not_a_string_and_default_scheme_and_example():
    with pytest.raises(UrlError, match="not a URL: 3"):
        check_url(3, "fleet file f: agent URL")
    assert check_url("bmc.example:8443", default_scheme="https") == "https://bmc.example:8443"
    assert check_url("http://bmc", default_scheme="https") == "http://bmc"
    with pytest.raises(UrlError, match=r"e\.g\. https://NODE:10250\)$"):
        check_url("notaurl", "--kubelet", example="https://NODE:10250")


def test_origin_defaults_ports_and_normalises_host():
    assert origin("https://BMC.example/redfish/v1") == Origin("https", "bmc.example", 443)
    assert origin("http://[::1]:9464/x") == Origin("http", "::1", 9464)
    assert str(origin("http://[::1]:9464/x")) == "http://[::1]:9464"
    assert str(origin("http://h")) == "http://h:80"
    for bad in ("/redfish/v1", "ftp://h", "http://", "http://h:99999"):
        with pytest.raises(UrlError):
            origin(bad)


@pytest.mark.parametrize("a, b, same", [
    ("https://bmc", "https://BMC:443/redfish/v1/Chassis", True),
    ("https://bmc:8443/", "https://bmc:8443/x", True),
    ("http://[::1]:80/a", "http://[0:0::1]/b", False),  # textually different hosts are different origins
    ("https://bmc", "http://bmc", False),
    ("https://bmc", "https://bmc:8443", False),
    ("https://bmc", "https://evil.example", False),
    ("https://bmc", "https://bmc.evil.example", False),
    ("https://bmc", "/redfish/v1", False),
    ("https://bmc", "not a url", False),
])
def test_same_origin(a, b, same):
    assert same_origin(a, b) is same
    assert same_origin(b, a) is same


def test_resolve_same_origin_refuses_other_hosts():
    base = "https://bmc:8443/redfish/v1"
    assert resolve_same_origin(base, "/redfish/v1/Chassis/1") == "https://bmc:8443/redfish/v1/Chassis/1"
    assert resolve_same_origin(base, "https://BMC:8443/redfish/v1/Chassis") == "https://BMC:8443/redfish/v1/Chassis"
    for ref in ("https://evil.example/redfish/v1/Chassis", "//evil.example/x", "http://bmc:8443/x",
                "https://bmc/x", "https://u:p@evil/x"):
        with pytest.raises(UrlError, match="another origin") as e:
            resolve_same_origin(base, ref)
        assert "u:p" not in str(e.value)
    with pytest.raises(UrlError):
        resolve_same_origin(base, "/x\r\nHost: evil")
