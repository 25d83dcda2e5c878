#!/usr/bin/env python3
"""Tries to hold a watcher's connections: opens COUNT connections spread
over the loopback addresses given, each sending its request head one byte
a second (never finishing it), while an agent sends one heartbeat a
second. Prints, each second, how many of the held connections are still
open and how the agent fared; stops by itself after DURATION seconds.

usage: hold-connections.py PORT KEY COUNT DURATION SOURCE_IP [SOURCE_IP...]
"""

import asyncio
import sys
import time


async def hold(port, source, state):
    try:
        r, w = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(source, 0)
        )
    except OSError:
        state["refused"] += 1
        return
    state["open"] += 1
    try:
        w.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        while not state["stop"]:
            w.write(b"a")
            await w.drain()
            try:
                data = await asyncio.wait_for(r.read(1024), 1.0)
                if not data:
                    break
            except asyncio.TimeoutError:
                pass
    except OSError:
        pass
    finally:
        state["open"] -= 1
        state["closed"] += 1
        w.close()


async def agent(port, key, state):
    body = b'{"host":"agent-01"}'
    req = (
        b"POST /v1/heartbeat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        b"Authorization: Bearer " + key.encode() + b"\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    while not state["stop"]:
        started = time.monotonic()
        try:
            r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
            w.write(req)
            line = await asyncio.wait_for(r.readline(), 5)
            ok = line.split(b" ")[1:2] == [b"200"]
            w.close()
        except (OSError, asyncio.TimeoutError, IndexError):
            ok = False
        state["agent_ok" if ok else "agent_failed"] += 1
        await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - started)))


async def main():
    port, key, count, duration = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sources = sys.argv[5:]
    state = dict(open=0, closed=0, refused=0, stop=False, agent_ok=0, agent_failed=0)
    tasks = [asyncio.create_task(hold(port, sources[i % len(sources)], state)) for i in range(count)]
    tasks.append(asyncio.create_task(agent(port, key, state)))
    for second in range(1, duration + 1):
        await asyncio.sleep(1)
        print(
            f"t={second:3}s held open={state['open']:5} closed={state['closed']:5} "
            f"connect failed={state['refused']:5} agent ok={state['agent_ok']:3} "
            f"failed={state['agent_failed']:3}",
            flush=True,
        )
    state["stop"] = True
    await asyncio.gather(*tasks, return_exceptions=True)


asyncio.run(main())
