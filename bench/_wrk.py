"""Runs wrk (Debian package `wrk`) over pre-built request files, flat out or paced.

The Lua script gives each wrk thread its own request file and sends every request once, in
order; when a thread runs out it starts over and says so (`wrapped`), since repeated bodies
are duplicates to the webhook. Paced runs keep a per-thread schedule with a monotonic clock
(LuaJIT's ffi) and hold each request back until its slot.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import time
from pathlib import Path

from bench.loadgen import RunResult

SCRIPT = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } wastatus_timespec;
int clock_gettime(int clk_id, wastatus_timespec *tp);
]]
local ts = ffi.new("wastatus_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) * 1000 + tonumber(ts.tv_nsec) / 1e6
end

local threads = {}
local next_id = 1
function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local prefix, spacing = args[1], tonumber(args[2]) or 0
  interval = spacing
  reqs, kinds = {}, {}
  local f = assert(io.open(prefix .. "." .. id .. ".req", "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  while pos <= #data do
    local nl = data:find("\n", pos, true)
    local kind, len = data:sub(pos, nl - 1):match("^(%a) (%d+)$")
    len = tonumber(len)
    table.insert(reqs, data:sub(nl + 1, nl + len))
    table.insert(kinds, kind)
    pos = nl + 1 + len
  end
  data = nil
  index, sent, sent_failed, wrapped = 0, 0, 0, 0
  codes = {}
  next_slot = now_ms() + 5
end

function delay()
  if interval <= 0 then return 0 end
  local slot = next_slot
  next_slot = next_slot + interval
  local wait = slot - now_ms()
  if wait < 0 then return 0 end
  return wait
end

function request()
  index = index + 1
  if index > #reqs then index = 1; wrapped = wrapped + 1 end
  sent = sent + 1
  if kinds[index] == "F" then sent_failed = sent_failed + 1 end
  return reqs[index]
end

function response(status, headers, body)
  codes[status] = (codes[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {sent = 0, sent_failed = 0, wrapped = 0, codes = {}}
  for _, thread in ipairs(threads) do
    total.sent = total.sent + thread:get("sent")
    total.sent_failed = total.sent_failed + thread:get("sent_failed")
    total.wrapped = total.wrapped + thread:get("wrapped")
    for code, n in pairs(thread:get("codes")) do
      total.codes[tostring(code)] = (total.codes[tostring(code)] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(total.codes) do table.insert(parts, string.format('"%s": %d', code, n)) end
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "sent": %d, "sent_failed": %d, "wrapped": %d,'
    .. ' "errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d},'
    .. ' "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "codes": {%s}}\n',
    summary.requests, summary.duration, total.sent, total.sent_failed, total.wrapped,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    summary.errors.status, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, table.concat(parts, ", ")))
end
"""


def available() -> str | None:
    """The path of wrk, or None when it is not installed."""
    return shutil.which("wrk")


def run(
    url: str,
    prefix: Path,
    threads: int,
    connections: int,
    duration: float,
    rate: float | None = None,
) -> RunResult:
    """One wrk run against `url` over `<prefix>.<i>.req`; `rate` paces it (requests/s in all)."""
    script = prefix.parent / "wastatus_bench.lua"
    if not script.exists():
        script.write_text(SCRIPT)
    spacing = threads * 1000.0 / rate if rate else 0.0
    args = [
        available() or "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
        "--",
        str(prefix),
        f"{spacing:.6f}",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    finished = subprocess.run(args, capture_output=True, text=True, timeout=duration + 60)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = next(
        (line for line in finished.stdout.splitlines() if line.startswith("WRKJSON ")), None
    )
    if finished.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed ({finished.returncode}): {finished.stderr or finished.stdout}"
        )
    data = json.loads(line[len("WRKJSON ") :])
    seconds = data["duration_us"] / 1e6
    errors = data["errors"]
    return RunResult(
        generator="wrk",
        requests=data["requests"],
        seconds=seconds,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        codes={int(code): n for code, n in data["codes"].items()},
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        sent=data["sent"],
        sent_failed=data["sent_failed"],
        wrapped=data["wrapped"] > 0,
        generator_cpu=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        wall=wall,
    )
