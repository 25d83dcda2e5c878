-- wrk script: POST /v1/heartbeat for 100,000 distinct hosts (host-0000000 …),
-- each wrk thread walking its own interleaved share of them.
--   load --serve --store null           # prints the address and key
--   wrk -t2 -c64 -d10s -s benches/wrk-heartbeat.lua http://ADDR/v1/heartbeat
-- wrk reports answers other than 2xx/3xx as "Non-2xx or 3xx responses".
-- Environment: IAMALIVE_KEY (default: the harness's bench key),
-- IAMALIVE_HOSTS (default 100000), IAMALIVE_INTERVAL (seconds: each
-- heartbeat says its interval, as an agent does; default none, so the
-- store learns it from the gaps).

local key = os.getenv("IAMALIVE_KEY") or "bench-key-0123456789abcdef"
local hosts = tonumber(os.getenv("IAMALIVE_HOSTS") or "100000")
local interval = os.getenv("IAMALIVE_INTERVAL")
local fmt = '{"host":"host-%07d"}'
if interval then fmt = '{"host":"host-%07d","interval":' .. tonumber(interval) .. '}' end
local threads = 0

function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
end

function init(args)
  n = offset
  headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. key,
  }
end

function request()
  local body = string.format(fmt, n % hosts)
  n = n + 7919 -- a prime stride: threads starting at different offsets rarely collide
  return wrk.format("POST", nil, headers, body)
end
