-- wrk script for the Medbook bench (bench/run.py sets the environment).
--
--   BENCH_MODE            "book": POST /v1/appointments; "slots": GET a practitioner's slots
--   BENCH_TOKENS          comma-separated bearer tokens, one per patient
--   BENCH_USERS           the same patients' users.id, in the same order (the bare app's X-User-Id)
--   BENCH_SLOT_BASE       book mode: the first slot id is BENCH_SLOT_BASE + 1
--   BENCH_THREADS         wrk's -t, so that threads interleave distinct slot ids
--   BENCH_PRACTITIONERS   slots mode: practitioner ids are 1..BENCH_PRACTITIONERS
--   BENCH_DATES           slots mode: comma-separated YYYY-MM-DD dates to pick from
--   BENCH_OUT             file the summary is written to, as JSON
--
-- Every booking request names a distinct slot: thread t sends base + t + 1,
-- base + threads + t + 1, ... Real and bare apps get byte-identical requests:
-- the real app reads Authorization, the bare one X-User-Id.

local function split(value)
  local items = {}
  for item in string.gmatch(value or "", "[^,]+") do
    items[#items + 1] = item
  end
  return items
end

local mode = os.getenv("BENCH_MODE") or "book"
local tokens = split(os.getenv("BENCH_TOKENS"))
local users = split(os.getenv("BENCH_USERS"))
local base = tonumber(os.getenv("BENCH_SLOT_BASE") or "0")
local nthreads = tonumber(os.getenv("BENCH_THREADS") or "1")
local practitioners = tonumber(os.getenv("BENCH_PRACTITIONERS") or "1")
local dates = split(os.getenv("BENCH_DATES"))
local out = os.getenv("BENCH_OUT")

local next_thread = 0
function setup(thread)
  thread:set("tid", next_thread)
  next_thread = next_thread + 1
end

local counter = 0
function init(args)
  tid = tid or 0
  math.randomseed(os.time() * 100 + tid)
end

function request()
  counter = counter + 1
  local i = (counter - 1) % #tokens + 1
  local headers = {
    ["Authorization"] = "Bearer " .. tokens[i],
    ["X-User-Id"] = users[i],
  }
  if mode == "book" then
    local slot = base + (counter - 1) * nthreads + tid + 1
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", "/v1/appointments", headers, '{"slot_id": ' .. string.format("%d", slot) .. '}')
  end
  local practitioner = math.random(1, practitioners)
  local date = dates[math.random(1, #dates)]
  return wrk.format("GET", "/v1/practitioners/" .. practitioner .. "/slots?date=" .. date, headers)
end

function done(summary, latency, requests)
  local e = summary.errors
  local f = assert(io.open(out, "w"))
  f:write(string.format(
    '{"requests": %d, "duration_us": %d, "errors_connect": %d, "errors_read": %d, "errors_write": %d, '
    .. '"errors_status": %d, "errors_timeout": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max))
  f:close()
end
