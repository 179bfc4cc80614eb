"""Reading back the MP4s the code under test writes (real OpenCV decoding)."""

from __future__ import annotations

import cv2


def count_frames(path) -> tuple[int, tuple[int, ...] | None]:
    """(number of decodable frames, shape of the last one as (H, W, 3)) of a video file."""
    capture = cv2.VideoCapture(str(path))
    count, shape = 0, None
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        count, shape = count + 1, frame.shape
    capture.release()
    return count, shape
