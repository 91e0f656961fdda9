-- Build-time check, run by the built kboot: every embedded script (module names as arguments)
-- must load as bytecode with the liblua kboot is linked with, under its own chunk name.
-- luac5.4 and liblua5.4 are one Debian source package; a mismatch (another Lua release, or
-- another integer/float size) fails here instead of at the first `kboot init`.
local searcher = package.searchers[2] -- kboot's: --scripts dir, then the embedded chunks
local bad = {}
for _, name in ipairs(arg) do
  local ok, f = pcall(searcher, name)
  local want = "@scripts/" .. name:gsub("%.", "/") .. ".lua"
  if not ok or type(f) ~= "function" then
    bad[#bad + 1] = ("%s: %s"):format(name, tostring(f))
  elseif debug.getinfo(f, "S").source ~= want then
    bad[#bad + 1] = ("%s: chunk name %s, expected %s"):format(name, debug.getinfo(f, "S").source, want)
  end
end
if #bad > 0 then
  io.stderr:write("embedded Lua bytecode does not load with the linked liblua (luac and liblua ",
    "must be the same Lua release, ", _VERSION, " here):\n  ", table.concat(bad, "\n  "), "\n")
  os.exit(1)
end
