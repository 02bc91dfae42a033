-- wippy.llm:llm, the LLM library of Wippy's `wippy/llm` component, provided by this runtime.
--   llm.generate(input, options) -> response | nil, error_string
--   llm.structured_output(schema, input, options) -> response | nil, error_string
--   llm.embed(text | {texts}, options) -> response | nil, error_string
--   llm.status(options) -> status | nil, error_string
--   llm.available_models(capability?) -> {model card}      llm.get_classes() -> {class}
--   constants llm.CAPABILITY, llm.ERROR_TYPE, llm.FINISH_REASON
--
-- input is a string (one user message), a prompt builder (wippy.llm:prompt), a table with
-- `messages`, or an array of messages. options.model is required: a model's meta.name, a class
-- name, or "class:<name>" (the class's highest-priority model); options.provider_id calls that
-- provider directly with options.model as the provider's own model name. Other options:
-- temperature, max_tokens, top_p, top_k, thinking_effort, tools {{name, description, schema}},
-- tool_choice, timeout (seconds), stream {reply_to, topic, buffer_size}, and provider options.
--
-- response: {result, tokens, finish_reason, tool_calls, metadata, usage_record?}. Errors are
-- strings, as in Wippy. The node's LLM service does the work (module llm_host); this file keeps
-- Wippy's input handling and argument checks.

local host = require("llm_host")

local type = type

local llm = {}

llm.CAPABILITY = {
    GENERATE = "generate",
    TOOL_USE = "tool_use",
    STRUCTURED_OUTPUT = "structured_output",
    EMBED = "embed",
    THINKING = "thinking",
    VISION = "vision",
    CACHING = "caching",
}

llm.ERROR_TYPE = {
    INVALID_REQUEST = "invalid_request",
    AUTHENTICATION = "authentication_error",
    RATE_LIMIT = "rate_limit_exceeded",
    SERVER_ERROR = "server_error",
    CONTEXT_LENGTH = "context_length_exceeded",
    CONTENT_FILTER = "content_filter",
    TIMEOUT = "timeout_error",
    MODEL_ERROR = "model_error",
}

llm.FINISH_REASON = {
    STOP = "stop",
    LENGTH = "length",
    CONTENT_FILTER = "filtered",
    TOOL_CALL = "tool_call",
    ERROR = "error",
}

-- the messages an input stands for, in the order Wippy's library tries the shapes
local function messages_of(input)
    if type(input) == "table" then
        if type(input.build) == "function" then return input:build().messages end
        if input.messages then return input.messages end
        if type(input.get_messages) == "function" then return input:get_messages() end
        if #input > 0 then return input end
    elseif type(input) == "string" then
        return { { role = "user", content = { { type = "text", text = input } } } }
    end
    return nil, "Invalid prompt input format"
end

local function model_given(options)
    return type(options) == "table" and options.model ~= nil
end

function llm.generate(input, options)
    if not model_given(options) then return nil, "Model is required in options" end
    local messages, err = messages_of(input)
    if not messages then return nil, err end
    return host.generate(messages, options)
end

function llm.structured_output(schema, input, options)
    if not model_given(options) then return nil, "Model is required in options" end
    if not schema then return nil, "Schema is required" end
    local messages, err = messages_of(input)
    if not messages then return nil, err end
    return host.structured_output(schema, messages, options)
end

function llm.embed(text, options)
    if not model_given(options) then return nil, "Model is required in options" end
    return host.embed(text, options)
end

function llm.status(options)
    if not model_given(options) then return nil, "Model is required in options" end
    return host.status(options)
end

function llm.available_models(capability)
    return host.available_models(capability)
end

function llm.get_classes()
    return host.get_classes()
end

return llm
