local io = require("io")

local function main(): integer
    io.print("Hello from the event-sourced Wippy runtime!")
    return 0
end

return { main = main }
