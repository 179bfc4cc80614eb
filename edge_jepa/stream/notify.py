"""`--notify URL`: one JSON POST per event to a webhook, from its own thread, never blocking the stream.

`send` only puts the record on a bounded queue (a full queue drops it and counts it); a worker thread POSTs
each record with urllib, retrying failures (no answer, a refused connection, HTTP 408/429/5xx) with exponential
backoff. A record the hook refuses for good (another 4xx) or that still fails after the retries is counted as
failed. `close` gives the queue a bounded grace period, then gives up on what is left (counted as unsent).
Nothing here raises into the stream: the counts and the last error go to the run's summary.
"""

from __future__ import annotations

import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass

from edge_jepa.io import strict_json

RETRY_STATUS = {408, 425, 429, 500, 502, 503, 504}


def check_url(url: str) -> str:
    """The URL if it is an http(s) URL with a host; else ValueError saying what is expected."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--notify {url!r}: expected an http:// or https:// URL with a host "
                         "(e.g. http://localhost:8080/hook)")
    try:
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError as e:
        raise ValueError(f"--notify {url!r}: {e}") from None
    return url


@dataclass
class NotifyStats:
    url: str
    sent: int = 0  # delivered (HTTP 2xx/3xx)
    failed: int = 0  # refused (4xx) or still failing after every retry
    dropped: int = 0  # the queue was full: never attempted
    unsent: int = 0  # still queued (or in flight) when the run ended and the grace period ran out
    retries: int = 0  # attempts after a first failure
    last_error: str | None = None

    def to_json(self) -> dict:
        return dict(self.__dict__)


class Notifier:
    """POST each event record (JSON) to `url` in a background thread (see the module docstring).

    retries: attempts after the first; backoff_s: the first wait (doubled each retry, at most max_backoff_s);
    timeout_s: per request; close_timeout_s: how long `close` waits for the queue to drain.
    """

    def __init__(self, url: str, *, queue_size: int = 64, retries: int = 4, backoff_s: float = 0.5,
                 max_backoff_s: float = 8.0, timeout_s: float = 5.0, close_timeout_s: float = 5.0):
        self.url = check_url(url)
        self.retries, self.backoff_s, self.max_backoff_s = retries, backoff_s, max_backoff_s
        self.timeout_s, self.close_timeout_s = timeout_s, close_timeout_s
        self.stats = NotifyStats(url)
        self._queue: queue.Queue[dict] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()  # give up: stop retrying and sending
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="edge-jepa-notify", daemon=True)
        self._thread.start()

    def send(self, record: dict) -> bool:
        """Queue one record; never blocks. False if the queue was full (the record is dropped and counted)."""
        try:
            self._queue.put_nowait(record)
            return True
        except queue.Full:
            with self._lock:
                self.stats.dropped += 1
            return False

    def close(self, timeout_s: float | None = None) -> NotifyStats:
        """Wait up to `timeout_s` (default close_timeout_s) for the queued records, then stop; the stats.
        Closing again returns the same stats."""
        if self._stop.is_set():
            return self.stats
        deadline = time.monotonic() + (self.close_timeout_s if timeout_s is None else timeout_s)
        while time.monotonic() < deadline and self._queue.unfinished_tasks:
            time.sleep(0.02)
        self._stop.set()
        self._thread.join(max(0.0, deadline - time.monotonic()) + 0.1)
        with self._lock:
            self.stats.unsent = self._queue.unfinished_tasks
        return self.stats

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                record = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            if self._deliver(record):
                self._queue.task_done()  # else given up at stop: it stays counted as unsent

    def _deliver(self, record: dict) -> bool:
        """POST with retries; True once settled (sent or failed), False if abandoned because of `close`."""
        body = strict_json(record, indent=None).encode()
        wait = self.backoff_s
        for attempt in range(self.retries + 1):
            if attempt:
                with self._lock:
                    self.stats.retries += 1
                if self._stop.wait(wait):
                    return False
                wait = min(wait * 2, self.max_backoff_s)
            retry, error = self._post(body)
            if error is None:
                with self._lock:
                    self.stats.sent += 1
                return True
            with self._lock:
                self.stats.last_error = error
            if not retry or self._stop.is_set():
                break
        if self._stop.is_set():
            return False
        with self._lock:
            self.stats.failed += 1
        return True

    def _post(self, body: bytes) -> tuple[bool, str | None]:
        """One POST: (worth retrying, error or None)."""
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "User-Agent": "edge-jepa-watch"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
            return False, None
        except urllib.error.HTTPError as e:
            return e.code in RETRY_STATUS, f"HTTP {e.code} {e.reason}"
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", e)
            return True, f"{type(reason).__name__}: {reason}"
        except Exception as e:  # noqa: BLE001 - a webhook must never take the stream down
            return False, f"{type(e).__name__}: {e}"

