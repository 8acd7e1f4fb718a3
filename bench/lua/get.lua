-- GET a path, optionally as a sensor: args path=/api/v1/sensor auth=1 sensors=<file>
-- threads=<n>. With auth, each request goes out under the next of this thread's sensors
-- (round robin), and "{sensorId}" in the path is replaced by that sensor's id.

local requests_ = {}
local cursor = 1

function init(args)
   local a = parse_args(args)
   local path = a.path or "/"
   if a.auth == "1" then
      for _, sensor in ipairs(load_sensors(a.sensors, tonumber(a.threads))) do
         local sensor_path = path:gsub("{sensorId}", sensor.id)
         table.insert(requests_, wrk.format("GET", sensor_path,
            {Authorization = "Bearer " .. sensor.token, Accept = "application/json"}))
      end
   else
      table.insert(requests_, wrk.format("GET", path))
   end
end

function request()
   sent = sent + 1
   local r = requests_[cursor]
   cursor = cursor % #requests_ + 1
   return r
end
