"""Hardening item 9: an endpoint's answer is read with a size cap and checked before decoding.

A body of more than 64 MB, or a PNG of far more pixels than asked for, is a failed attempt
(ProviderError, exit 9), never an output that is written and charged. Loopback servers only.
"""

from __future__ import annotations

import struct
import zlib

import pytest

from avatargen.errors import ProviderError
from avatargen.providers.endpoint import EndpointProvider
from avatargen.providers.http_client import MAX_BODY_BYTES
from fake_endpoint import FakeEndpoint
from loopback import LoopbackServer
from provider_fakes import model, request

MB = 1024 * 1024
# What the two kernels' socket buffers may hold beyond what the client read.
SLACK = 16 * MB


def png_header_only(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of width x height: a few KB on the wire, width*height pixels once
    decoded. Compressed row by row, so building it never holds the raw image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits, all black
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def provider_for(fake: FakeEndpoint) -> EndpointProvider:
    from provider_fakes import FakeClock, policy

    return EndpointProvider(model(), fake.url, policy=policy(FakeClock()))


@pytest.mark.slow
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_cap_fails_and_the_client_stops_reading(chunked):
    with FakeEndpoint(huge_body=300 * MB, chunked=chunked) as fake:
        provider = provider_for(fake)
        try:
            with pytest.raises(ProviderError) as caught:
                provider.generate(request())
        finally:
            provider.close()
        assert fake.body_done.wait(10), "the server was still writing: the client kept reading"
    assert caught.value.exit_code == 9
    assert "64 MB" in caught.value.message and fake.url in caught.value.message
    assert fake.posts == 1  # a server that does this once will do it again: no retry
    assert fake.bytes_sent < MAX_BODY_BYTES + SLACK, fake.bytes_sent


@pytest.mark.slow
def test_a_body_just_under_the_cap_is_read():
    from avatargen.providers.http_client import BodyTooLarge, send_capped

    with FakeEndpoint(huge_body=2 * MB, chunked=True) as fake:
        import httpx

        with httpx.Client() as client:
            response = send_capped(client, "POST", fake.url, json={"inputs": {}}, cap=2 * MB)
            assert response.status_code == 400  # the fake refuses an empty request: not streamed
            payload = {"inputs": {"prompt": "p", "image": "", "seed": 1}}
            response = send_capped(client, "POST", fake.url, json=payload, cap=2 * MB)
            assert len(response.content) == 2 * MB and response.headers["content-type"] == "image/png"
            with pytest.raises(BodyTooLarge):
                send_capped(client, "POST", fake.url, json=payload, cap=2 * MB - 1)


@pytest.mark.slow
def test_a_png_with_a_huge_header_fails_before_it_is_decoded():
    answer = png_header_only(12000, 12000)
    assert len(answer) < 64 * 1024  # tiny on the wire, 144 megapixels decoded
    with FakeEndpoint(answer=answer) as fake:
        provider = provider_for(fake)
        try:
            with pytest.raises(ProviderError) as caught:
                provider.generate(request())
        finally:
            provider.close()
    message = caught.value.message
    assert caught.value.exit_code == 9
    assert "12000x12000" in message and "512x512" in message
    assert fake.posts == 1


@pytest.mark.slow
def test_an_image_a_little_larger_than_asked_is_still_taken():
    from provider_fakes import png

    with FakeEndpoint(answer=png((1024, 1024))) as fake:  # 4x the 512x512 asked for: the limit
        provider = provider_for(fake)
        try:
            result = provider.generate(request())
        finally:
            provider.close()
    assert result.image.startswith(b"\x89PNG")


def test_a_health_probe_answer_is_capped_too(httpx_mock):
    from provider_fakes import HF_ENDPOINT

    httpx_mock.add_response(url=f"{HF_ENDPOINT}/health", content=bytes(2 * MB))
    report = EndpointProvider(model(), HF_ENDPOINT).status()
    assert report.state == "unknown" and "more than 1 MB" in report.detail


class _GzipAnswer(LoopbackServer):
    """Answers every POST with `body` gzip-encoded, its Content-Length the compressed size."""

    def __init__(self, body: bytes) -> None:
        import gzip
        from http.server import BaseHTTPRequestHandler

        packed = gzip.compress(body)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(packed)))
                self.end_headers()
                self.wfile.write(packed)

        self.listen(Handler)


@pytest.mark.slow
@pytest.mark.parametrize("size, fits", [(2 * MB, True), (8 * MB, False)])
def test_a_compressed_answer_is_capped_by_its_decoded_size(size, fits):
    """A few KB on the wire (its declared length) can inflate to far more: the cap counts what
    it decodes to, so a declared length under the cap is no reason to read it whole unchecked."""
    import httpx

    from avatargen.providers.http_client import BodyTooLarge, send_capped

    with _GzipAnswer(bytes(size)) as fake, httpx.Client() as client:
        if fits:
            assert send_capped(client, "POST", fake.url, json={}, cap=4 * MB).content == bytes(size)
        else:
            with pytest.raises(BodyTooLarge):
                send_capped(client, "POST", fake.url, json={}, cap=4 * MB)
