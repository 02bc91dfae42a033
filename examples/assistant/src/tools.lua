--- word_count(args) -> {words}: what the `word_count` tool answers the model.
local function word_count(args)
    local n = 0
    for _ in string.gmatch(args.text or "", "%S+") do n = n + 1 end
    return { words = n }
end

return { word_count = word_count }
