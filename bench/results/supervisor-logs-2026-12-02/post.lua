wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"meterId":"LB-%d","readAt":"%s","values":{"t1":%d}}', n % 100000, os.getenv("READ_AT"), 1000 + n % 1000)
  return wrk.format(nil, "/v1/readings", nil, body)
end
