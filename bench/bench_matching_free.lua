-- GET <path>?lat=&lon=&limit=10 at a random point of the bbox given as script args:
-- wrk ... -s bench_matching_free.lua URL -- minlon minlat maxlon maxlat [path]
-- (the hello-world baseline uses the same script with its own path, so wrk does the same work)
local minlon, minlat, maxlon, maxlat, path
function init(args)
  minlon, minlat, maxlon, maxlat = tonumber(args[1]), tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
  path = args[5] or "/v1/spaces/free"
  math.randomseed(os.time() * 1000 + math.floor(os.clock() * 1e6) + math.random(1, 1e6))
end
function request()
  local lat = minlat + math.random() * (maxlat - minlat)
  local lon = minlon + math.random() * (maxlon - minlon)
  return wrk.format("GET", string.format("%s?lat=%.6f&lon=%.6f&limit=10", path, lat, lon))
end
