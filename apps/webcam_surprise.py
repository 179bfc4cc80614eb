"""Webcam surprise: the smallest useful app on edge-jepa's stream API. Copy it and make it yours.

    python apps/webcam_surprise.py                      # webcam 0, the embedded default model
    python apps/webcam_surprise.py 1 --model my-model   # webcam 1, your model (`edge-jepa fit` for your scene)
    python apps/webcam_surprise.py street.mp4           # a file, played at its own speed
    python apps/webcam_surprise.py rtsp://cam/stream --no-window   # print events only (headless boxes)

The window shows the camera, a heatmap where the world model's prediction of the next moment failed, and
the surprise score against the adaptive threshold. Events are printed and appended to events.jsonl as
they end. Keys: q quit, space pause, r recalibrate (after you move the camera).
"""

from __future__ import annotations

import argparse

import cv2

from edge_jepa.stream import Event, EventDetector, EventLog, Renderer, StreamLoop, open_source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", default="0", help="webcam index, video file, URL or image folder")
    parser.add_argument("--model", default="default", help="model dir, export bundle or an embedded model "
                        "('default' = 'world', frame-causal; 'window')")
    parser.add_argument("--log", default="events.jsonl", help="where events are appended")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds to learn the scene's normal")
    parser.add_argument("--no-window", action="store_true", help="no display: print events only")
    args = parser.parse_args()

    source = open_source(args.source, realtime=True)  # files play at their own speed, like a camera
    log = EventLog(args.log)

    def on_event(event: Event) -> None:  # runs as each event ends; the line is on disk when it returns
        log.append(event)
        print(f"event {event.id}: {event.start_s:.1f}-{event.end_s:.1f} s, {event.describe()}, box {event.region}")

    detector = EventDetector(warmup_s=args.warmup, first_id=log.next_id)
    loop = StreamLoop(args.model, source, detector=detector, on_event=on_event, keep_trace=False)
    renderer = Renderer(loop)
    with loop:  # capture and inference threads; leaving the block closes an open event
        for update in loop:  # the newest frame with the newest score; stale frames are skipped
            if args.no_window or update.repeat:
                continue
            cv2.imshow("edge-jepa surprise", renderer.draw(update, paused=loop.paused)[:, :, ::-1])
            key = cv2.waitKey(1) & 0xFF
            if key in (ord("q"), 27):
                break
            if key == ord(" "):
                loop.pause(not loop.paused)
            elif key == ord("r"):
                loop.recalibrate()
    log.close()
    stats = loop.stats()
    print(f"{stats.update_fps:.1f} scores/s, p90 latency {stats.latency_ms['p90']:.0f} ms, "
          f"{stats.windows_dropped} stale windows dropped, {len(detector.events)} events")


if __name__ == "__main__":
    main()
