-- wrk script: every request POSTs one batch of delivery reports (Infobip's `{"results": [...]}`),
-- a JSON body read in turn from a file of one body a line made beforehand
-- (`benchmarks.run infobip_requests`), with the Authorization header given. Each report is a new
-- message, so none is a duplicate. Arguments: the requests file, the Authorization header, then
-- optionally a file prefix: for every 2xx answer, its first event_id and how many it stored.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local lines = nil
local auth = nil
local acked = nil

function init(args)
  lines = io.lines(args[1])
  auth = args[2]
  if args[3] then
    acked = io.open(args[3] .. "." .. tid, "w")
    acked:setvbuf("line")
  end
end

function request()
  local body = lines()
  if not body then
    error("the requests file ran out: make more")
  end
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = auth }
  return wrk.format("POST", nil, headers, body)
end

function response(status, headers, body)
  if acked and status >= 200 and status < 300 then
    local id = string.match(body, '"event_id":%s*"([^"]+)"')
    local stored = string.match(body, '"stored":%s*(%d+)')
    if id and stored then acked:write(stored, " ", id, "\n") end
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
