-- POST /api/v1/events as many sensors: args events=<n per request> nonce=<run id>
-- sensors=<file> threads=<n>. events=1 sends one event object; more sends a JSON array.
-- Every event has a unique eventId (run nonce, thread, sequence), so each accepted event is
-- one stored row and a duplicate would show up in the "accepted" counts.

local sensors
local cursor = 1
local sequence = 0
local nonce
local path = "/api/v1/events"
local types = {"temperature", "humidity", "pressure", "battery"}
local units = {"Cel", "%RH", "hPa", "V"}

function init(args)
   local a = parse_args(args)
   events_per_request = tonumber(a.events or "1")
   nonce = a.nonce or "run"
   path = a.path or path
   sensors = load_sensors(a.sensors, tonumber(a.threads))
end

local function event_json(now_ms)
   sequence = sequence + 1
   local kind = sequence % #types + 1
   return string.format(
      '{"type":"%s","value":%.2f,"unit":"%s","ts":%d,"eventId":"%s-%d-%d",' ..
      '"data":{"fw":"1.4.2","rssi":%d}}',
      types[kind], 20 + (sequence % 1000) / 100, units[kind], now_ms, nonce, thread_index,
      sequence, -40 - sequence % 50)
end

function request()
   sent = sent + 1
   local sensor = sensors[cursor]
   cursor = cursor % #sensors + 1
   local now_ms = os.time() * 1000
   local body
   if events_per_request == 1 then
      body = event_json(now_ms)
   else
      local parts = {}
      for i = 1, events_per_request do parts[i] = event_json(now_ms) end
      body = "[" .. table.concat(parts, ",") .. "]"
   end
   return wrk.format("POST", path, {
      Authorization = "Bearer " .. sensor.token,
      ["Content-Type"] = "application/json",
      Accept = "application/json",
   }, body)
end
