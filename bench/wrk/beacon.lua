-- wrk script for track's POST /e: one small valid beacon per request, each with its own event
-- id (a repeated id would be stored once and measure less work). BENCH_RUN keeps ids of
-- different runs apart; `tid` is set per thread in setup().
local run = os.getenv("BENCH_RUN") or tostring(os.time())
local ua = os.getenv("BENCH_UA")
  or "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
local threads = 0
local counter = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local headers = {
  ["Content-Type"] = "text/plain;charset=UTF-8",
  ["Origin"] = "http://127.0.0.1:8080",
  ["User-Agent"] = ua,
}

function request()
  counter = counter + 1
  local id = string.format("e_%s_%d_%d", run, tid or 0, counter)
  local body = '{"site":"demo","vid":"v_bench_0001","events":[{"id":"' .. id
    .. '","type":"page","url":"https://shop.example/"}]}'
  return wrk.format("POST", "/e", headers, body)
end
