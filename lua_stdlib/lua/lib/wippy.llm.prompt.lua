-- wippy.llm:prompt, the prompt builder of Wippy's `wippy/llm` component, provided by this runtime.
--   prompt.new(messages?) -> builder          prompt.with_system(text) -> builder
--   builder:add_system / add_user / add_assistant / add_developer(text, meta?) -> builder
--   builder:add_message(role, parts, name?, meta?) -> builder
--   builder:add_function_call(name, arguments, id?, {provider_metadata}?) -> builder
--   builder:add_function_result(name, result, id?) -> builder
--   builder:add_cache_marker(marker_id?) -> builder
--   builder:get_messages() -> messages   builder:build() -> {messages = ...}
--   builder:clone() -> builder           builder:clear() -> builder
--   parts: prompt.text(s), prompt.image(url, mime?), prompt.image_base64(mime, data),
--   prompt.document_base64(mime, data); constants prompt.ROLE, prompt.CONTENT_TYPE.
--
-- Messages are in the wire format providers read:
--   {role, content = {{type="text", text} | {type="image", source={type="url"|"base64", url|data,
--    mime_type}}}, name?, metadata?, function_call = {name, arguments, id?}?, function_call_id?}
-- and a cache marker is {role = "cache_marker", marker_id}.
--
-- Behaviour kept as Wippy's builder has it, because prompts built by existing apps must reach the
-- model unchanged:
--   * a user/system/assistant/developer message that follows one of the same role (and the same
--     name, when it has one) is merged into it: a text part joins the previous text part with a
--     blank line, other parts are appended. The later message's meta is then dropped.
--   * add_system and add_developer ignore empty text; add_user and add_assistant do not.
--   * get_messages re-reads function results: a result (JSON text or a table) holding `_images`
--     has them removed (a string `result` field gains " (see image results below)") and the
--     images follow, as one user message, after the run of function calls and results; a table
--     result is sent as JSON text.
--   * the messages table (and the parts tables) given to the builder are used, not copied.

local json = require("json")

local type, ipairs, pairs, setmetatable, insert = type, ipairs, pairs, setmetatable, table.insert

local prompt = {}

prompt.ROLE = {
    SYSTEM = "system",
    USER = "user",
    ASSISTANT = "assistant",
    DEVELOPER = "developer",
    FUNCTION_CALL = "function_call",
    FUNCTION_RESULT = "function_result",
    CACHE_MARKER = "cache_marker",
}

prompt.CONTENT_TYPE = { TEXT = "text", IMAGE = "image", DOCUMENT = "document" }

local ROLE, TEXT = prompt.ROLE, prompt.CONTENT_TYPE.TEXT

local MERGEABLE = {
    [ROLE.USER] = true, [ROLE.SYSTEM] = true, [ROLE.ASSISTANT] = true, [ROLE.DEVELOPER] = true,
}

-- parts ------------------------------------------------------------------------------------------

function prompt.text(content)
    return { type = TEXT, text = content }
end

function prompt.image(url, mime_type)
    return { type = prompt.CONTENT_TYPE.IMAGE, source = { type = "url", url = url, mime_type = mime_type } }
end

function prompt.image_base64(mime_type, data)
    return { type = prompt.CONTENT_TYPE.IMAGE, source = { type = "base64", mime_type = mime_type, data = data } }
end

function prompt.document_base64(mime_type, data)
    return { type = prompt.CONTENT_TYPE.DOCUMENT, source = { type = "base64", mime_type = mime_type, data = data } }
end

-- function results carrying images ---------------------------------------------------------------

-- the images a function result lists under `_images` (url items or ready image parts), and the
-- result without them; nil images when there is nothing to take out
local function split_images(content)
    local parsed, from_text
    if type(content) == "string" then
        if not content:find('"_images"', 1, true) then return content, nil end
        local decoded, err = json.decode(content)
        if err or type(decoded) ~= "table" or not decoded._images then return content, nil end
        parsed, from_text = decoded, true
    elseif type(content) == "table" then
        if not content._images then return content, nil end
        parsed, from_text = content, false
    else
        return content, nil
    end

    local images = {}
    if type(parsed._images) == "table" then
        for _, img in ipairs(parsed._images) do
            if type(img) == "table" then
                if img.url then
                    insert(images, prompt.image(img.url))
                elseif img.type == prompt.CONTENT_TYPE.IMAGE and img.source then
                    insert(images, img)
                end
            end
        end
    end
    parsed._images = nil
    if #images > 0 and type(parsed.result) == "string" then
        parsed.result = parsed.result .. " (see image results below)"
    end
    if from_text then return json.encode(parsed), images end
    return parsed, images
end

-- the builder ------------------------------------------------------------------------------------

local Builder = {}
Builder.__index = Builder

function prompt.new(messages)
    return setmetatable({ messages = messages or {} }, Builder)
end

function prompt.with_system(system_content)
    local builder = prompt.new()
    if system_content and #system_content > 0 then builder:add_system(system_content) end
    return builder
end

function Builder:add_message(role, content_parts, name, metadata)
    if not role or not content_parts or #content_parts == 0 then return self end
    local last = self.messages[#self.messages]
    if last and MERGEABLE[role] and last.role == role and (not name or name == last.name) then
        local parts = last.content
        for _, part in ipairs(content_parts) do
            local tail = parts[#parts]
            if part.type == TEXT and tail and tail.type == TEXT then
                tail.text = tail.text .. "\n\n" .. part.text
            else
                insert(parts, part)
            end
        end
        return self
    end
    local message = { role = role, content = content_parts, metadata = metadata }
    if name then message.name = name end
    insert(self.messages, message)
    return self
end

function Builder:add_system(content, meta)
    if content and #content > 0 then return self:add_message(ROLE.SYSTEM, { prompt.text(content) }, nil, meta) end
    return self
end

function Builder:add_developer(content, meta)
    if content and #content > 0 then return self:add_message(ROLE.DEVELOPER, { prompt.text(content) }, nil, meta) end
    return self
end

function Builder:add_user(content, meta)
    return self:add_message(ROLE.USER, { prompt.text(content) }, nil, meta)
end

function Builder:add_assistant(content, meta)
    return self:add_message(ROLE.ASSISTANT, { prompt.text(content) }, nil, meta)
end

function Builder:add_function_call(function_name, arguments, function_call_id, options)
    if function_name and arguments then
        local call = { name = function_name, arguments = arguments }
        if function_call_id then call.id = function_call_id end
        if options and options.provider_metadata then call.provider_metadata = options.provider_metadata end
        insert(self.messages, { role = ROLE.FUNCTION_CALL, content = {}, function_call = call })
    end
    return self
end

function Builder:add_function_result(name, content, function_call_id)
    if name and content then
        local message = { role = ROLE.FUNCTION_RESULT, name = name, content = { prompt.text(content) } }
        if function_call_id then message.function_call_id = function_call_id end
        insert(self.messages, message)
    end
    return self
end

function Builder:add_cache_marker(marker_id)
    insert(self.messages, { role = ROLE.CACHE_MARKER, marker_id = marker_id or "default" })
    return self
end

local function in_call_run(message)
    return message and (message.role == ROLE.FUNCTION_CALL or message.role == ROLE.FUNCTION_RESULT)
end

function Builder:get_messages()
    local out, pending = {}, {}
    local messages = self.messages
    for i, msg in ipairs(messages) do
        if msg.role == ROLE.FUNCTION_RESULT then
            local content = msg.content
            if type(content) == "table" and #content > 0 and content[1].text then content = content[1].text end
            local cleaned, images = split_images(content)
            if type(cleaned) == "table" then cleaned = json.encode(cleaned) end
            local result = { role = msg.role, name = msg.name, content = { prompt.text(cleaned) } }
            if msg.function_call_id then result.function_call_id = msg.function_call_id end
            insert(out, result)
            if images then
                for _, img in ipairs(images) do insert(pending, img) end
            end
        else
            insert(out, msg)
        end
        if #pending > 0 and not in_call_run(messages[i + 1]) then
            insert(out, { role = ROLE.USER, content = pending })
            pending = {}
        end
    end
    return out
end

function Builder:build()
    return { messages = self:get_messages() }
end

function Builder:clear()
    self.messages = {}
    return self
end

-- one level deeper than a plain copy: tables inside `t` are copied, what they hold is shared
local function copy2(t)
    local out = {}
    for k, v in pairs(t) do
        if type(v) == "table" then
            local inner = {}
            for k2, v2 in pairs(v) do inner[k2] = v2 end
            out[k] = inner
        else
            out[k] = v
        end
    end
    return out
end

function Builder:clone()
    local copy = prompt.new()
    for _, msg in ipairs(self.messages) do
        local m = {
            role = msg.role, name = msg.name, marker_id = msg.marker_id, function_call_id = msg.function_call_id,
        }
        if msg.metadata then m.metadata = copy2(msg.metadata) end
        if msg.function_call then
            m.function_call = {}
            for k, v in pairs(msg.function_call) do m.function_call[k] = v end
        end
        local content = msg.content
        if type(content) == "string" then
            m.content = content
        elseif content then
            m.content = {}
            for _, part in ipairs(content) do
                if type(part) == "table" then insert(m.content, copy2(part)) end
            end
        end
        insert(copy.messages, m)
    end
    return copy
end

return prompt
