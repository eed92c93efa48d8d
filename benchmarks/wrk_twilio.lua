-- wrk script: every request POSTs a Twilio status callback, a signed form, read in turn from a
-- file of `signature<TAB>body` lines made beforehand (`benchmarks.run twilio_requests`: Lua has
-- no HMAC-SHA1, and signing here would time the load generator). Each callback is a new
-- MessageSid, so none is a duplicate. Arguments: the requests file, then optionally a file
-- prefix for the event_id of every 2xx answer, as wrk_unique.lua writes them.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local lines = nil
local acked = nil

function init(args)
  lines = io.lines(args[1])
  if args[2] then
    acked = io.open(args[2] .. "." .. tid, "w")
    acked:setvbuf("line")
  end
end

function request()
  local line = lines()
  if not line then
    error("the requests file ran out: make more")
  end
  local tab = string.find(line, "\t", 1, true)
  local headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["X-Twilio-Signature"] = string.sub(line, 1, tab - 1),
  }
  return wrk.format("POST", nil, headers, string.sub(line, tab + 1))
end

function response(status, headers, body)
  if acked and status >= 200 and status < 300 then
    local id = string.match(body, '"event_id":%s*"([^"]+)"')
    if id then acked:write(id, "\n") end
  end
end

function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "non2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
