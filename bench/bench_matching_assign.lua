-- POST /v1/assignments from a random point of the bbox, with a driver key:
-- wrk ... -s bench_matching_assign.lua URL -- minlon minlat maxlon maxlat KEY
local minlon, minlat, maxlon, maxlat, key
function init(args)
  minlon, minlat, maxlon, maxlat = tonumber(args[1]), tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
  key = args[5]
  math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6) + math.random(1, 1e6))
end
function request()
  local lat = minlat + math.random() * (maxlat - minlat)
  local lon = minlon + math.random() * (maxlon - minlon)
  local body = string.format('{"lat": %.6f, "lon": %.6f}', lat, lon)
  return wrk.format("POST", "/v1/assignments",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}, body)
end
