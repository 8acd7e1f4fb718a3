-- Shared by every bench scenario: counters per thread, and a done() that prints one JSON line.
-- bench/wrk.py prepends this file to the scenario's script (wrk loads a single file).
--
-- Each wrk thread has its own Lua state; the counters below are that thread's globals, read
-- back in done() through thread:get(). A request is "sent" when request() builds it and
-- "completed" when response() sees its answer, so sent - completed is what was still in flight
-- when wrk stopped (the server may still commit those).

sent = 0
completed = 0
acked_events = 0      -- events in requests answered 201 (what the client was promised)
reported_accepted = 0 -- sum of the "accepted" counts in those 201 bodies
statuses = {}
events_per_request = 0
args_by_name = {}

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("thread_index", #threads)
end

function parse_args(args)
   for _, arg in ipairs(args) do
      local key, value = arg:match("^([%w_]+)=(.*)$")
      if key then args_by_name[key] = value end
   end
   return args_by_name
end

-- Lines "sensorId token"; thread k of n takes sensors k, k+n, k+2n, ... so threads never share.
function load_sensors(path, thread_count)
   local mine, index = {}, 0
   local file = assert(io.open(path, "r"), "cannot open sensors file " .. path)
   for line in file:lines() do
      local sensor_id, token = line:match("^(%S+)%s+(%S+)$")
      if sensor_id then
         if index % thread_count == thread_index - 1 then
            table.insert(mine, {id = sensor_id, token = token})
         end
         index = index + 1
      end
   end
   file:close()
   assert(#mine > 0, "no sensor for thread " .. thread_index .. " in " .. path)
   return mine
end

function response(status, headers, body)
   completed = completed + 1
   statuses[status] = (statuses[status] or 0) + 1
   if status == 201 and events_per_request > 0 then
      acked_events = acked_events + events_per_request
      local accepted = body:match('"accepted"%s*:%s*(%d+)')
      if accepted then reported_accepted = reported_accepted + tonumber(accepted) end
   end
end

function done(summary, latency, requests)
   local totals = {sent = 0, completed = 0, acked_events = 0, reported_accepted = 0}
   local codes = {}
   for _, thread in ipairs(threads) do
      for name, _ in pairs(totals) do
         totals[name] = totals[name] + (thread:get(name) or 0)
      end
      for code, count in pairs(thread:get("statuses") or {}) do
         codes[code] = (codes[code] or 0) + count
      end
   end
   local status_parts = {}
   for code, count in pairs(codes) do
      table.insert(status_parts, string.format('"%d":%d', code, count))
   end
   local percentiles = {}
   for _, p in ipairs({50, 90, 99, 99.9}) do
      table.insert(percentiles, string.format('"%s":%d', tostring(p), latency:percentile(p)))
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"duration_us":%d,"requests":%d,"bytes":%d,' ..
      '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
      '"latency_us":{"min":%d,"mean":%.1f,"max":%d,"stdev":%.1f,"percentiles":{%s}},' ..
      '"statuses":{%s},"sent":%d,"completed":%d,"acked_events":%d,"reported_accepted":%d}\n',
      summary.duration, summary.requests, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.min, latency.mean, latency.max, latency.stdev, table.concat(percentiles, ","),
      table.concat(status_parts, ","), totals.sent, totals.completed, totals.acked_events,
      totals.reported_accepted))
end
