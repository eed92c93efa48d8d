-- wrk script: every request POSTs a Lisoloo sms.sent with a unique event_id, spread over 2,000
-- messages. With a file prefix as argument (`-- /tmp/acked`), the event_id of every 2xx answer
-- is written to <prefix>.<thread>, one per line, so the run can be checked against the database.
local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local counter = 0
local acked = nil

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  if args[1] then
    acked = io.open(args[1] .. "." .. tid, "w")
    acked:setvbuf("line")
  end
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"event_id":"w%d-%d","event_type":"sms.sent","timestamp":"2026-11-23T10:00:00Z",' ..
    '"message_id":"bench%05d","data":{"recipient_phone":"+2438%d%07d","carrier":"vodacom_drc",' ..
    '"sent_at":"2026-11-23T10:00:00Z"}}', tid, counter, counter % 2000, tid, counter)
  return wrk.format(nil, nil, nil, body)
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
