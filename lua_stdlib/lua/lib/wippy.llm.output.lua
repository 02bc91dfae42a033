-- wippy.llm:output, the output library of Wippy's `wippy/llm` component, provided by this runtime.
-- Provider drivers and apps use it to shape what a model call streams and how it fails.
--
--   output.TYPE            chunk kinds: CONTENT "chunk", THINKING, TOOL_CALL, ERROR, DONE
--   output.ERROR_TYPE      error types (invalid_request, rate_limit_exceeded, network_error, ...)
--   output.ERROR_KIND_MAP  error type -> {kind = errors.<KIND>, retryable}
--   output.FINISH_REASON   stop, length, filtered, tool_call, error
--   output.content(text) / thinking(text) / tool_call(name, arguments, id?) / error(type, message, code?)
--   output.done(meta?) / usage(prompt, completion, thinking?, cache_write?, cache_read?)
--   output.wrap(type, content, usage?)                   one chunk of any kind, usage attached
--   output.streamer(pid, topic?, buffer_size?) -> streamer | nil, err
--       :send_content / :send_thinking / :send_tool_call / :send_error / :send_done  (sent at once)
--       :buffer_content(text) -> sent?   :flush() -> sent?
--   output.errors.generate|structured_output|embed|status(contract_args) -> error builder
--       :classifier(fn) :with_contract(args) :kind(type) :message(m) :details(t) :from(err) :build()
--   output.TRUNCATION_MSG, output.detect_truncation(response)
--
-- The constant tables come from the node (module llm_host), the same values the LLM service uses,
-- so the stream and error types an app sees here are the ones the runtime produces. A streamer
-- sends each chunk to its process with process.send on `topic` (default "llm_response").
-- buffer_content gathers text until buffer_size bytes (default 10) have gathered or the text ends a
-- sentence (".", "!" or "?", maybe followed by spaces), then sends it as one chunk; a buffer_size
-- of 0 or less keeps everything for flush().

local host = require("llm_host")
local logger = require("logger")

local type, pairs, tostring, setmetatable = type, pairs, tostring, setmetatable
local find = string.find

local constants = host.constants()

local output = {}

output.TYPE = constants.STREAM_TYPE
output.ERROR_TYPE = constants.OUTPUT_ERROR_TYPE
output.ERROR_KIND_MAP = constants.ERROR_KIND_MAP
output.FINISH_REASON = constants.FINISH_REASON

local TYPE, ERROR_TYPE = output.TYPE, output.ERROR_TYPE
local DEFAULT_TOPIC, DEFAULT_BUFFER = "llm_response", 10

-- chunk builders -------------------------------------------------------------------------------

function output.content(text)
    return { type = TYPE.CONTENT, content = text }
end

function output.thinking(text)
    return { type = TYPE.THINKING, content = text }
end

function output.tool_call(name, arguments, id)
    return { type = TYPE.TOOL_CALL, name = name, arguments = arguments, id = id }
end

function output.error(err_type, message, code)
    return {
        type = TYPE.ERROR,
        error = { type = err_type or ERROR_TYPE.SERVER_ERROR, message = message or "Unknown error", code = code },
    }
end

function output.done(meta)
    return { type = TYPE.DONE, meta = meta or {} }
end

function output.usage(prompt_tokens, completion_tokens, thinking_tokens, cache_write_tokens, cache_read_tokens)
    local prompt, completion, thinking = prompt_tokens or 0, completion_tokens or 0, thinking_tokens or 0
    return {
        prompt_tokens = prompt,
        completion_tokens = completion,
        thinking_tokens = thinking,
        cache_write_tokens = cache_write_tokens or 0,
        cache_read_tokens = cache_read_tokens or 0,
        total_tokens = prompt + completion + thinking,
    }
end

-- where `content` goes in a chunk of each kind (tool calls take a {name, arguments, id} table)
local WRAPPED_AS = {
    [TYPE.CONTENT] = "content", [TYPE.THINKING] = "content", [TYPE.ERROR] = "error", [TYPE.DONE] = "meta",
}

function output.wrap(result_type, content, usage_info)
    local chunk = { type = result_type }
    if result_type == TYPE.TOOL_CALL then
        if type(content) == "table" then
            chunk.name, chunk.arguments, chunk.id = content.name, content.arguments, content.id
        else
            chunk.name, chunk.arguments = "unknown", content
        end
    elseif WRAPPED_AS[result_type] then
        chunk[WRAPPED_AS[result_type]] = content
    end
    if usage_info then chunk.usage = usage_info end
    return chunk
end

-- streamer -------------------------------------------------------------------------------------

local Streamer = {}
Streamer.__index = Streamer

-- process.send is looked up at each send, so a test can stand in for it
local function send(self, chunk)
    return process.send(self._to, self._topic, chunk)
end

function Streamer:send_content(text) return send(self, output.content(text)) end
function Streamer:send_thinking(text) return send(self, output.thinking(text)) end
function Streamer:send_tool_call(name, arguments, id) return send(self, output.tool_call(name, arguments, id)) end
function Streamer:send_error(err_type, message, code) return send(self, output.error(err_type, message, code)) end
function Streamer:send_done(meta) return send(self, output.done(meta)) end

local function ends_sentence(text)
    return find(text, "[%.!?]%s*$") ~= nil
end

function Streamer:buffer_content(text)
    self.buffer = self.buffer .. (text or "")
    if self.buffer_size > 0 and (#self.buffer >= self.buffer_size or ends_sentence(self.buffer)) then
        return self:flush()
    end
    return false
end

function Streamer:flush()
    if #self.buffer == 0 then return false end
    local text = self.buffer
    self.buffer = ""
    send(self, output.content(text))
    return true
end

function output.streamer(pid, topic, buffer_size)
    if not pid then return nil, "PID is required for streamer" end
    topic = topic or DEFAULT_TOPIC
    return setmetatable({
        pid = pid, topic = topic, buffer = "", buffer_size = buffer_size or DEFAULT_BUFFER,
        _to = tostring(pid), _topic = tostring(topic),
    }, Streamer)
end

-- structured errors ----------------------------------------------------------------------------

local log = logger:named("llm")

-- the errors value for an error type (kind and retryability from ERROR_KIND_MAP), logged once here
local function structured(err_type, message, details)
    local mapping = output.ERROR_KIND_MAP[err_type] or { kind = errors.UNKNOWN, retryable = false }
    local err = errors.new({
        message = message or "LLM error", kind = mapping.kind, retryable = mapping.retryable, details = details,
    })
    log:error("llm provider error", {
        kind = mapping.kind, retryable = mapping.retryable, provider = details.provider,
        operation = details.operation, model = details.model, message = message, details = details,
    })
    return err
end

local Builder = {}
Builder.__index = Builder

function Builder:classifier(fn) self._classifier = fn return self end
function Builder:with_contract(args) self._contract = args return self end
function Builder:kind(k) self._kind = k return self end
function Builder:message(m) self._message = m return self end
function Builder:details(d) self._details = d return self end
function Builder:from(transport_err)
    self._http_err = transport_err
    self._has_http_err = true -- :from(nil) still asks the classifier
    return self
end

local function merge_into(target, source)
    if source then for k, v in pairs(source) do target[k] = v end end
end

-- build() uses what this call set, then clears it: one builder serves a driver's whole call
function Builder:build()
    local kind, message, details = self._kind, self._message, self._details
    local transport_err, has_transport_err = self._http_err, self._has_http_err
    self._kind, self._message, self._details, self._http_err, self._has_http_err = nil, nil, nil, nil, false

    local merged = {}
    if has_transport_err and self._classifier then
        local c_kind, c_message, c_details = self._classifier(transport_err)
        kind = kind or c_kind
        message = message or c_message
        merge_into(merged, c_details)
    end
    merge_into(merged, details)
    merged.provider = self._provider
    merged.operation = self._operation
    if self._contract and self._contract.model then merged.model = self._contract.model end
    return structured(kind or ERROR_TYPE.SERVER_ERROR, message, merged)
end

local function builders_for(operation)
    return function(contract_args)
        local args = contract_args or {}
        return setmetatable({
            _operation = operation, _provider = args._provider_id, _contract = args, _has_http_err = false,
        }, Builder)
    end
end

output.errors = {
    generate = builders_for("generate"),
    structured_output = builders_for("structured_output"),
    embed = builders_for("embed"),
    status = builders_for("status"),
}

-- truncation -----------------------------------------------------------------------------------

output.TRUNCATION_MSG = "Your last reply hit the output token limit before its tool calls were complete, so "
    .. "they were dropped. Try again with a shorter reply, splitting the work into smaller steps."

-- a reply cut off by the token limit in the middle of tool calls
function output.detect_truncation(result)
    if not result or result.finish_reason ~= output.FINISH_REASON.LENGTH then return false end
    return result.tool_calls ~= nil and #result.tool_calls > 0
end

return output
