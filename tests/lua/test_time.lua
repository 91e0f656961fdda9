-- kboot.time: the monotonic clock, sleep without forking, and Go's time.ParseDuration syntax
-- (expected values from Go's documented rules: units ns us µs ms s m h, sign, fractions, "0").
local lu = require("luaunit")
local time = require("kboot.time")

TestTime = {}

function TestTime:test_parse_duration_go_syntax()
  local cases = {
    { "8760h0m0s", 31536000 }, { "24h0m0s", 86400 }, { "1h30m", 5400 }, { "1.5h", 5400 },
    { "90s", 90 }, { "2h45m", 9900 }, { "0", 0 }, { "-0", 0 }, { "+5s", 5 }, { "-1.5h", -5400 },
    { ".5s", 0.5 }, { "1.s", 1 }, { "300ms", 0.3 }, { "4m0s", 240 }, { "1m30.5s", 90.5 },
  }
  for _, c in ipairs(cases) do
    local v, err = time.parse_duration(c[1])
    lu.assertNotNil(v, c[1] .. ": " .. tostring(err))
    lu.assertAlmostEquals(v, c[2], 1e-9, c[1])
  end
  lu.assertEquals(math.type(time.parse_duration("8760h0m0s")), "integer")
  lu.assertAlmostEquals(time.parse_duration("1500us"), 0.0015, 1e-12)
  lu.assertAlmostEquals(time.parse_duration("2\u{b5}s"), 2e-6, 1e-12)   -- micro sign
  lu.assertAlmostEquals(time.parse_duration("2\u{3bc}s"), 2e-6, 1e-12)  -- Greek mu
  lu.assertAlmostEquals(time.parse_duration("10ns"), 1e-8, 1e-15)
end

function TestTime:test_parse_duration_rejects()
  for _, bad in ipairs({ "", "1", "h", "1x", "1hh", "5 s", " 5s", "5s ", ".s", "-", "1d", "1H", "--1s", "1e3s",
                         "3000000h" }) do
    local v, err = time.parse_duration(bad)
    lu.assertNil(v, bad)
    lu.assertStrContains(err, "invalid duration", false, bad)
  end
  local v, err = time.parse_duration(42)
  lu.assertNil(v)
  lu.assertStrContains(err, "must be a string")
end

function TestTime:test_format_duration()
  lu.assertEquals(time.format_duration(90061), "25h1m1s")
  lu.assertEquals(time.format_duration(86400), "24h0m0s")
  lu.assertEquals(time.format_duration(90), "1m30s")
  lu.assertEquals(time.format_duration(5), "5s")
  lu.assertEquals(time.format_duration(0), "0s")
  lu.assertEquals(time.format_duration(-3600), "-1h0m0s")
  lu.assertEquals(time.format_duration(59.9), "59s")
  for _, s in ipairs({ 1, 61, 3599, 3600, 31536000 }) do
    lu.assertEquals(time.parse_duration(time.format_duration(s)), s)
  end
end

function TestTime:test_monotonic_sleep()
  local t0 = time.now()
  lu.assertEquals(math.type(t0), "float")
  time.sleep(0.05)
  local dt = time.now() - t0
  lu.assertTrue(dt >= 0.05, ("slept %.4f s"):format(dt))
  time.sleep(0); time.sleep(-1)
  lu.assertErrorMsgContains("number expected", time.sleep, "x")
end

os.exit(lu.LuaUnit.run())
