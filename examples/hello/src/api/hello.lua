local http = require("http")

local function handler()
    local res = http.response()
    res:set_status(http.STATUS.OK)
    res:write_json({ message = "hello", at = "the event-sourced wippy runtime" })
end

return { handler = handler }
