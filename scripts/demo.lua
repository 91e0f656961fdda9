--- issue a demo CA and server certificate and print them (placeholder main job)
local log = require("kboot.log")
log.info("demo", "kboot is alive")
