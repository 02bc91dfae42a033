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
-- Wippy's input handling and argument checks. ERROR_TYPE and FINISH_REASON are the service's own
-- constants (llm_host.constants()).
--
-- Optional contracts, as Wippy's library consults them (each opened once through its default
-- binding and kept while that binding stays the default; with none bound they cost nothing):
--   wippy.llm:model_resolver  resolve({model = options.model}) -> model card. Tried first for every
--       call without provider_id; the card's first provider then serves the call (see llm_host). A
--       nil card, an error or a failure falls back to the registry's models.
--   wippy.llm:usage_tracker   track_usage(model, prompt_tokens, completion_tokens, thinking_tokens,
--       cache_read_tokens, cache_write_tokens, {timestamp?, metadata?}) -> usage_id, after each
--       successful generate, structured_output and embed; the id becomes response.usage_record.
--       The model is the resolved model's name (options.model for provider_id calls). A tracker's
--       error or failure is logged and never fails the call.
-- llm._model_resolver / llm._usage_tracker, when an app sets them, stand in for the bindings.

local host = require("llm_host")
local contract = require("contract")
local logger = require("logger")

local type, pcall, tostring, rawget = type, pcall, tostring, rawget

local USAGE_TRACKER = "wippy.llm:usage_tracker"
local MODEL_RESOLVER = "wippy.llm:model_resolver"

local log = logger:named("llm")
local constants = host.constants()

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

llm.ERROR_TYPE = constants.ERROR_TYPE
llm.FINISH_REASON = constants.FINISH_REASON

-- optional contracts ---------------------------------------------------------------------------

-- contract id -> {binding = id, instance = opened instance}
local opened = {}

-- the instance serving an optional contract: what the app set in llm[field], else its default
-- binding's, opened the first time; nil when nothing is bound or it cannot be opened
local function optional(field, contract_id)
    local injected = rawget(llm, field)
    if injected ~= nil then return injected end
    local binding = host.bound(contract_id)
    if binding == nil then return nil end
    local cached = opened[contract_id]
    if cached and cached.binding == binding then return cached.instance end
    local definition, err = contract.get(contract_id)
    local instance
    if definition then instance, err = definition:open(binding) end
    if not instance then
        log:warn("cannot open " .. contract_id .. "; calls go on without it",
                 { binding = binding, error = tostring(err) })
        return nil
    end
    opened[contract_id] = { binding = binding, instance = instance }
    return instance
end

-- the model card a bound resolver gives for options.model; nil to resolve through the registry
local function resolved_card(options)
    if options.provider_id then return nil end
    local resolver = optional("_model_resolver", MODEL_RESOLVER)
    if resolver == nil then return nil end
    local ok, card, err = pcall(resolver.resolve, resolver, { model = options.model })
    if ok and card and not err then return card end
    if not ok or err then
        log:warn("model_resolver failed; resolving through the registry",
                 { model = tostring(options.model), error = tostring(ok and err or card) })
    end
    return nil
end

-- the name a usage record carries: the card's, the provider's model for direct calls, else the
-- registry model options.model resolves to
local function model_name(options, card)
    if card then return card.name or options.model end
    if options.provider_id then return options.model end
    return host.model_name(options.model) or options.model
end

local function track_usage(resp, options, card)
    local tracker = optional("_usage_tracker", USAGE_TRACKER)
    if tracker == nil then return end
    local tokens = type(resp.tokens) == "table" and resp.tokens or {}
    local extra = { timestamp = options.timestamp, metadata = options.metadata }
    local ok, usage_id, err = pcall(tracker.track_usage, tracker, model_name(options, card),
        tokens.prompt_tokens or 0, tokens.completion_tokens or 0, tokens.thinking_tokens or 0,
        tokens.cache_read_input_tokens or tokens.cache_read_tokens or 0,
        tokens.cache_creation_input_tokens or tokens.cache_write_tokens or 0, extra)
    if not ok or err then
        log:warn("usage_tracker failed; the call's usage is not tracked",
                 { model = tostring(options.model), error = tostring(ok and err or usage_id) })
    elseif usage_id ~= nil then
        resp.usage_record = { usage_id = usage_id }
    end
end

-- resolve (maybe through the resolver), call, and track a successful call's usage
local function tracked(options, run)
    local card = resolved_card(options)
    local resp, err = run(card)
    -- a step of a durable run answered from the log used no tokens now: nothing to track
    local from_log = resp and type(resp.metadata) == "table" and resp.metadata.from_log
    if resp and not from_log then track_usage(resp, options, card) end
    return resp, err
end

-- calls ----------------------------------------------------------------------------------------

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
    return tracked(options, function(card) return host.generate(messages, options, card) end)
end

function llm.structured_output(schema, input, options)
    if not model_given(options) then return nil, "Model is required in options" end
    if not schema then return nil, "Schema is required" end
    local messages, err = messages_of(input)
    if not messages then return nil, err end
    return tracked(options, function(card) return host.structured_output(schema, messages, options, card) end)
end

function llm.embed(text, options)
    if not model_given(options) then return nil, "Model is required in options" end
    return tracked(options, function(card) return host.embed(text, options, card) end)
end

function llm.status(options)
    if not model_given(options) then return nil, "Model is required in options" end
    return host.status(options, resolved_card(options))
end

function llm.available_models(capability)
    return host.available_models(capability)
end

function llm.get_classes()
    return host.get_classes()
end

return llm
