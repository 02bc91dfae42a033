-- wippy.agent:context, the agent library of Wippy's `wippy/agent` component, provided by this runtime.
--   agent_context.new{context, delegate_tools = {enabled, description_suffix, default_schema},
--                     enable_cache, memory_contract} -> ctx
--   ctx:add_tools(specs) / :add_delegates(specs) / :set_active_traits(list|nil) /
--   :set_active_tools(list|nil) / :configure_delegate_tools(cfg) / :set_memory_contract(cfg) /
--   :update_context(tbl) -> ctx
--   ctx:load_agent(id | spec, {model}?) -> runner, err      ctx:switch_to_agent(id | spec, opts?) -> ok, err
--   ctx:switch_to_model(name) -> ok, err    ctx:get_current_agent() -> runner, err    ctx:get_config()
--   runner:step(prompt_builder, {context, stream_target = {reply_to, topic}, tool_call})
--       -> {result, tokens, finish_reason, tool_calls = {{id, name, arguments, registry_id, context}},
--           delegate_calls = {{id, name, arguments, agent_id, context}}, truncated?}, err
--   runner:run(prompt_builder, {max_turns = 10, context, stream_target, tool_call, run_id, resume})
--       -> the last step's response plus `turns` and `run_id`, err
--   runner:get_stats() -> {id, name, total_tokens = {prompt, completion, thinking, total}}
--
-- Agents compile in the runtime (module agent_host, services/_agents.py): resolution by registry
-- id then meta.name (after a bound `wippy.agent:resolver` contract), traits, tools, delegates,
-- memory and our `inherit`. Trait build functions run here, once per load; prompt functions run at
-- every step. Delegates are offered to the model as tools unless delegate_tools.enabled is false.
--
-- runner:run is this runtime's addition: it calls each tool the model asks for with
-- funcs.call(registry_id, arguments) (context: the tool's, the run's, call_id), adds the call and
-- its result to the prompt builder, hands each delegation to the delegate agent (which runs its
-- own loop on the message and whose answer is the result), and steps again. A tool's error goes
-- back to the model as the result ({"error": ...}); it never ends the run. It stops when the model
-- asks for nothing more (its own finish_reason), when a reply was cut off ("length"), or after
-- max_turns model calls (finish_reason "max_turns", the unexecuted calls left in the response).
-- `tool_call` applies to the first step only, so a forced tool call cannot repeat forever.
--
-- Runs are durable (services/_agent_runs.py): the run's start, every model call (with its step
-- number), every tool or delegation result and its end are records on the agents stream, each in
-- the log before the run goes on. Given a `run_id` of its own choosing (resume defaults to true),
-- a caller that runs the same run again - after a crash, a restart, or just twice - gets every
-- step the log holds from the log (no model call, no tool run) and the rest live. A delegation
-- runs as the run `<run_id>/<call id>`.

local agent_host = require("agent_host")
local funcs = require("funcs")
local json = require("json")
local contract = require("contract")

local type, pairs, ipairs, tostring, setmetatable, select = type, pairs, ipairs, tostring, setmetatable, select
local concat, math_type = table.concat, math.type

local RESOLVER_CONTRACT = "wippy.agent:resolver"
local DEFAULT_MAX_TURNS = 10
-- how deep delegates may hand tasks on (a delegate of a delegate ...): a delegation cycle stops here
local MAX_DELEGATION_DEPTH = 5

local llm_lib = require("llm")  -- imports: wippy.llm:llm and wippy.llm:prompt (an app's own copy wins)
local prompt_lib = require("prompt")
local function llm() return llm_lib end
local function prompt() return prompt_lib end

local function merged(...)
    local out = {}
    for i = 1, select("#", ...) do
        local t = select(i, ...)
        if type(t) == "table" then
            for k, v in pairs(t) do out[k] = v end
        end
    end
    return out
end

local function copy_list(list)
    local out = {}
    for i, v in ipairs(list or {}) do out[i] = v end
    return out
end

local function error_text(message)
    local text = json.encode({ error = tostring(message) })
    return text
end

---------------------------------------------------------------------------------------------------
-- the runner

local Runner = {}
Runner.__index = Runner

local agent_context = {}
agent_context.__index = agent_context

local function new_runner(spec, ctx)
    local tools, offered = {}, {}
    for _, tool in ipairs(spec.tools or {}) do
        tools[tool.name] = tool
        offered[#offered + 1] = { name = tool.name, description = tool.description, schema = tool.schema }
    end
    local runner = {
        id = spec.id,
        name = spec.name,
        description = spec.description,
        model = spec.model,
        max_tokens = spec.max_tokens,
        temperature = spec.temperature,
        thinking_effort = spec.thinking_effort or 0,
        tools = tools,
        memory = spec.memory or {},
        memory_contract = spec.memory_contract,
        system_prompt = spec.system_prompt or "",
        prompt_funcs = spec.prompt_funcs or {},
        step_funcs = spec.step_funcs or {},
        total_tokens = { prompt = 0, completion = 0, thinking = 0, total = 0 },
        _offered = offered,
        _ctx = ctx,
    }
    runner.system_message = { role = "system", content = runner.system_prompt }
    return setmetatable(runner, Runner)
end

-- the text the agent's traits' prompt functions add for this step
local function dynamic_prompt(self, runtime_context)
    local parts = {}
    for _, pf in ipairs(self.prompt_funcs) do
        local call_context = merged(pf.context, runtime_context)
        call_context.agent_id = self.id
        local text, err = funcs.new():with_context(call_context):call(pf.func_id)
        if not err and type(text) == "string" and text ~= "" then parts[#parts + 1] = text end
    end
    return concat(parts, "\n\n")
end

local function count_tokens(self, tokens)
    if type(tokens) ~= "table" then return end
    local total = self.total_tokens
    total.prompt = total.prompt + (tokens.prompt_tokens or 0)
    total.completion = total.completion + (tokens.completion_tokens or 0)
    total.thinking = total.thinking + (tokens.thinking_tokens or 0)
    total.total = total.prompt + total.completion + total.thinking
end

function Runner:step(prompt_builder, runtime_options)
    if type(prompt_builder) ~= "table" or type(prompt_builder.get_messages) ~= "function" then
        return nil, "step needs a prompt builder (wippy.llm:prompt)"
    end
    runtime_options = runtime_options or {}
    local P = prompt()

    local system_prompt = self.system_prompt
    local extra = dynamic_prompt(self, runtime_options.context)
    if extra ~= "" then
        system_prompt = system_prompt ~= "" and (system_prompt .. "\n\n" .. extra) or extra
    end

    local options = { model = self.model, max_tokens = self.max_tokens, temperature = self.temperature }
    if #self._offered > 0 then options.tools = self._offered end
    if self.thinking_effort and self.thinking_effort > 0 then options.thinking_effort = self.thinking_effort end
    if runtime_options.tool_call ~= nil then options.tool_choice = runtime_options.tool_call end
    if runtime_options.stream_target then options.stream = runtime_options.stream_target end
    if runtime_options.run_id then  -- ours: the run and step on the call's record
        options.run_id, options.turn = runtime_options.run_id, runtime_options.turn
    end

    local messages = {}
    if system_prompt ~= "" then
        messages[1] = { role = P.ROLE.SYSTEM, content = { P.text(system_prompt) } }
    end
    if self._ctx.enable_cache then
        messages[#messages + 1] = { role = P.ROLE.CACHE_MARKER, marker_id = self.id }
    end
    for _, message in ipairs(prompt_builder:get_messages()) do messages[#messages + 1] = message end

    local result, err = llm().generate(messages, options)
    if err then return nil, err end
    if type(result) ~= "table" then return nil, "the model gave no response" end
    count_tokens(self, result.tokens)

    local response = {
        result = result.content or result.result,
        tokens = result.tokens,
        finish_reason = result.finish_reason,
        metadata = result.metadata,
    }
    local calls = result.tool_calls
    if type(calls) ~= "table" or #calls == 0 then return response end
    if result.finish_reason == "length" then -- the calls may be cut off: Wippy returns none
        response.truncated = true
        return response
    end

    local tool_calls, delegate_calls = {}, {}
    for _, call in ipairs(calls) do
        local tool = self.tools[call.name]
        if tool and tool.agent_id then
            local call_context = merged(runtime_options.context, tool.context)
            call_context.from_agent_id = self.id
            call_context.to_agent_id = tool.agent_id
            delegate_calls[#delegate_calls + 1] = {
                id = call.id, name = call.name, arguments = call.arguments, agent_id = tool.agent_id,
                context = call_context, provider_metadata = call.provider_metadata,
            }
        else
            if tool then
                call.registry_id = tool.registry_id
                call.context = tool.context
            end
            tool_calls[#tool_calls + 1] = call
        end
    end
    if #tool_calls > 0 then response.tool_calls = tool_calls end
    if #delegate_calls > 0 then response.delegate_calls = delegate_calls end
    return response
end

function Runner:get_stats()
    return { id = self.id, name = self.name, total_tokens = self.total_tokens }
end

-- a call's arguments as a table, or nil and the reason
local function arguments_of(call)
    local args = call.arguments
    if type(args) == "string" then
        local decoded, err = json.decode(args)
        if err then return nil, "Failed to parse arguments: " .. tostring(err) end
        args = decoded
    end
    if args == nil then args = {} end
    return args
end

-- the result text of one tool call: what the tool returned (text as it is, other values as JSON),
-- or {"error": ...}; and whether it is an error
local function call_tool(call, run_context, maybe_ran)
    if not call.registry_id then
        return error_text("unknown tool: " .. tostring(call.name)), true
    end
    local args, arg_err = arguments_of(call)
    if arg_err then return error_text(arg_err), true end
    local call_context = merged(call.context, run_context)
    call_context.call_id = call.id
    if maybe_ran then call_context.tool_retry = true end  -- ours: it may have run before this call
    local result, err = funcs.new():with_context(call_context):call(call.registry_id, args)
    if err then return error_text(err), true end
    if type(result) == "string" then return result, false end
    local text, enc_err = json.encode(result)
    if enc_err then return error_text("the tool's result cannot be sent as JSON: " .. tostring(enc_err)), true end
    return text, false
end

local run_loop

-- the delegate agent's answer to a delegation (it runs its own loop on the message, as a run of
-- its own whose id derives from this run's and the call's, so a resumed run resumes it too)
local function delegate(self, call, options, depth, state)
    if depth >= MAX_DELEGATION_DEPTH then
        return error_text("delegation refused: agents already " .. depth .. " delegations deep"), true
    end
    local args, arg_err = arguments_of(call)
    if arg_err then return error_text(arg_err), true end
    local task = type(args) == "table" and args.message or nil
    if type(task) ~= "string" or task == "" then task = json.encode(args) end

    local parent = self._ctx
    local sub = agent_context.new({
        context = call.context, delegate_tools = parent.delegate_tools, enable_cache = parent.enable_cache,
    })
    local runner, err = sub:load_agent(call.agent_id)
    if not runner then return error_text(err), true end
    local conversation = prompt().new()
    conversation:add_user(task)
    local answer, run_err = run_loop(runner, conversation, {
        max_turns = options.max_turns, context = call.context,
        run_id = state.run_id .. "/" .. tostring(call.id), resume = state.resume, parent_run_id = state.run_id,
    }, depth + 1)
    if not answer then return error_text(run_err), true end
    return answer.result or "", false
end

local function add_exchange(builder, call, text)
    local opts = call.provider_metadata and { provider_metadata = call.provider_metadata } or nil
    builder:add_function_call(call.name, call.arguments, call.id, opts)
    builder:add_function_result(call.name, text, call.id)
end

-- a tool call's (or delegation's) result: from the run's records when they hold it, else by
-- running it, its result in the log before the model sees it
local function journaled(state, call, run_it)
    local turn = state.turns
    local found, err = agent_host.recorded_tool(state.run_id, turn, call.id, {
        name = call.name, registry_id = call.registry_id, agent_id = call.agent_id,
    })
    if err then return nil, err end
    if found.result ~= nil then return found.result end
    local text, is_error = run_it(found.maybe_ran)
    local ok, record_err = agent_host.record_tool(state.run_id, {
        turn = turn, call_id = call.id, name = call.name, registry_id = call.registry_id, agent_id = call.agent_id,
        arguments = call.arguments, result = text, is_error = is_error == true,
    })
    if not ok then return nil, record_err end
    return text
end

local function add_tokens(total, tokens)
    if type(tokens) ~= "table" then return end
    total.prompt = total.prompt + (tokens.prompt_tokens or 0)
    total.completion = total.completion + (tokens.completion_tokens or 0)
    total.thinking = total.thinking + (tokens.thinking_tokens or 0)
    total.total = total.prompt + total.completion + total.thinking
end

local function run_steps(self, builder, options, depth, max_turns, state)
    local step_options = {
        context = options.context, stream_target = options.stream_target, tool_call = options.tool_call,
        run_id = state.run_id,  -- every model call of the run is recorded under it, with its step
    }
    while true do
        step_options.turn = state.turns + 1
        local response, err = self:step(builder, step_options)
        if not response then return nil, err end
        state.turns = state.turns + 1
        add_tokens(state.tokens, response.tokens)
        step_options.tool_call = nil
        local calls, delegations = response.tool_calls or {}, response.delegate_calls or {}
        for i, call in ipairs(calls) do
            if call.id == nil then call.id = state.turns .. ":" .. i end
        end
        for i, call in ipairs(delegations) do
            if call.id == nil then call.id = state.turns .. ":d" .. i end
        end
        if #calls == 0 and #delegations == 0 then
            response.turns, response.run_id = state.turns, state.run_id
            return response
        end
        if state.turns >= max_turns then
            response.finish_reason = "max_turns"
            response.turns, response.run_id = state.turns, state.run_id
            return response
        end
        for _, call in ipairs(calls) do
            local text, rec_err = journaled(state, call, function(maybe_ran)
                return call_tool(call, options.context, maybe_ran)
            end)
            if text == nil then return nil, rec_err end
            add_exchange(builder, call, text)
        end
        for _, call in ipairs(delegations) do
            local text, rec_err = journaled(state, call, function() return delegate(self, call, options, depth, state) end)
            if text == nil then return nil, rec_err end
            add_exchange(builder, call, text)
        end
    end
end

run_loop = function(self, builder, options, depth)
    local max_turns = options.max_turns
    if max_turns == nil then max_turns = DEFAULT_MAX_TURNS end
    if math_type(max_turns) ~= "integer" or max_turns < 1 then
        return nil, "run: max_turns must be a positive whole number"
    end
    local run_id, resume = options.run_id, options.resume
    if run_id == nil or run_id == "" then
        run_id, resume = agent_host.run_id(), false
    elseif resume == nil then
        resume = true  -- an id the caller chose: the log may hold the run already
    end
    run_id = tostring(run_id)
    local source = self._source or {}
    local info, err = agent_host.begin_run(run_id, {
        agent = self.id, agent_name = self.name, model = self.model, parent_run_id = options.parent_run_id,
        spec = source.spec, config = source.config, enable_cache = self._ctx.enable_cache,
        input = builder.messages or builder:get_messages(),
        options = { max_turns = max_turns, context = options.context, tool_call = options.tool_call },
    }, resume)
    if not info then return nil, err end
    local state = {
        run_id = run_id, resume = info.resumed, turns = 0,
        tokens = { prompt = 0, completion = 0, thinking = 0, total = 0 },
    }
    local ok, response, run_err = pcall(run_steps, self, builder, options, depth, max_turns, state)
    if not ok then response, run_err = nil, response end
    local finished = { status = "failed", turns = state.turns, tokens = state.tokens, error = tostring(run_err) }
    if response then
        finished = {
            status = "completed", turns = state.turns, tokens = state.tokens,
            finish_reason = response.finish_reason, result = response.result,
        }
    end
    agent_host.finish_run(run_id, finished)  -- a run whose end is not in the log resumes to its end
    if not ok then error(run_err, 0) end
    return response, run_err
end

function Runner:run(prompt_builder, options)
    if type(prompt_builder) ~= "table" or type(prompt_builder.get_messages) ~= "function" then
        return nil, "run needs a prompt builder (wippy.llm:prompt)"
    end
    return run_loop(self, prompt_builder, options or {}, 0)
end

---------------------------------------------------------------------------------------------------
-- the context

function agent_context.new(config)
    config = config or {}
    local self = setmetatable({}, agent_context)
    self.enable_cache = config.enable_cache ~= false
    self.base_context = merged(config.context)
    self.current_agent = nil
    self.current_agent_id = nil
    self.current_model = nil
    self.additional_tools = {}
    self.additional_delegates = {}
    self.active_traits = nil
    self.active_tools = nil
    self.memory_contract = config.memory_contract
    local dt = config.delegate_tools or {}
    self.delegate_tools = {
        enabled = dt.enabled, description_suffix = dt.description_suffix, default_schema = dt.default_schema,
    }
    return self
end

local function clear_current_agent(self)
    self.current_agent = nil
    self.current_agent_id = nil
    self.current_model = nil
end

-- one spec or a list of them, as a list
local function as_list(specs, single_key)
    if type(specs) == "string" or (type(specs) == "table" and specs[single_key] ~= nil) then
        return { specs }
    end
    return specs
end

function agent_context:add_tools(tool_specs)
    if not tool_specs then return self end
    for _, spec in ipairs(as_list(tool_specs, "id")) do
        self.additional_tools[#self.additional_tools + 1] = type(spec) == "string" and { id = spec } or spec
    end
    clear_current_agent(self)
    return self
end

function agent_context:add_delegates(delegate_specs)
    if not delegate_specs then return self end
    for _, spec in ipairs(as_list(delegate_specs, "id")) do
        self.additional_delegates[#self.additional_delegates + 1] = spec
        self.delegate_tools.enabled = true
    end
    clear_current_agent(self)
    return self
end

local function overlay(list)
    if list == nil then return nil end
    if type(list) == "string" or (type(list) == "table" and (list.id or list.name)) then return { list } end
    return copy_list(list)
end

function agent_context:set_active_traits(traits)
    self.active_traits = overlay(traits)
    clear_current_agent(self)
    return self
end

function agent_context:set_active_tools(tools)
    self.active_tools = overlay(tools)
    clear_current_agent(self)
    return self
end

function agent_context:configure_delegate_tools(config)
    config = config or {}
    if config.enabled ~= nil then self.delegate_tools.enabled = config.enabled end
    if config.description_suffix then self.delegate_tools.description_suffix = config.description_suffix end
    if config.default_schema then self.delegate_tools.default_schema = config.default_schema end
    clear_current_agent(self)
    return self
end

function agent_context:set_memory_contract(memory_contract)
    self.memory_contract = memory_contract
    clear_current_agent(self)
    return self
end

function agent_context:update_context(context_updates)
    if type(context_updates) ~= "table" then return self end
    for k, v in pairs(context_updates) do self.base_context[k] = v end
    clear_current_agent(self)
    return self
end

-- the spec a bound wippy.agent:resolver gives for an id; nil, nil when none is bound or it has none
local function resolve_via_contract(agent_id)
    local resolver, err = contract.get(RESOLVER_CONTRACT)
    if err or not resolver then return nil, nil end
    local implementations, impl_err = resolver:implementations()
    if impl_err then
        return nil, "failed to inspect agent resolver implementations: " .. tostring(impl_err)
    end
    if not implementations or #implementations == 0 then return nil, nil end
    local instance, open_err = resolver:open()
    if open_err or not instance then
        return nil, "failed to open agent resolver: " .. tostring(open_err or "no instance")
    end
    local spec, resolve_err = instance:resolve({ agent_id = agent_id })
    if resolve_err then return nil, "failed to resolve agent: " .. tostring(resolve_err) end
    return spec, nil
end

-- the compiled spec, after running the traits' build functions (their contributions compile in)
-- (and the config that compiles it again the same way: the moment it was compiled for, and what
-- the build functions gave, which a run's records keep so a replay needs no build function)
local function compile(spec, config)
    local compiled, err = agent_host.compile(spec, config)
    if not compiled then return nil, err end
    config.now = compiled.compiled_at
    if #compiled.build_funcs == 0 then return compiled, config end
    local contributions = {}
    for _, build in ipairs(compiled.build_funcs) do
        local result, call_err = funcs.new():with_context(build.context):call(build.func_id, build.prompt, build.context)
        contributions[build.trait_id] = (not call_err and type(result) == "table") and result or {}
    end
    local final = merged(config, { contributions = contributions })
    compiled, err = agent_host.compile(spec, final)
    if not compiled then return nil, err end
    return compiled, final
end

function agent_context:load_agent(agent_spec_or_id, options)
    if not agent_spec_or_id then return nil, "Agent spec or identifier is required" end
    options = options or {}
    local spec, identifier = agent_spec_or_id, agent_spec_or_id
    if type(agent_spec_or_id) == "table" then
        identifier = agent_spec_or_id.id or agent_spec_or_id.name or "inline-agent"
    else
        identifier = tostring(agent_spec_or_id)
        local resolved, err = resolve_via_contract(identifier)
        if err then return nil, err end
        spec = resolved or identifier
    end

    local compiled, config_or_err = compile(spec, {
        context = self.base_context,
        tools = self.additional_tools,
        delegates = self.additional_delegates,
        active_traits = self.active_traits,
        active_tools = self.active_tools,
        model = options.model,
        memory_contract = self.memory_contract,
        delegate_tools = self.delegate_tools,
    })
    if not compiled then return nil, config_or_err end

    local runner = new_runner(compiled, self)
    runner._source = { spec = spec, config = config_or_err }
    self.current_agent = runner
    self.current_agent_id = identifier
    self.current_model = compiled.model
    return runner, nil
end

function agent_context:get_current_agent()
    if not self.current_agent then return nil, "No agent loaded" end
    return self.current_agent, nil
end

function agent_context:switch_to_agent(agent_identifier, options)
    if not agent_identifier then return false, "Agent spec or identifier is required" end
    local target = type(agent_identifier) == "table" and (agent_identifier.id or agent_identifier.name)
        or agent_identifier
    if target == nil or target ~= self.current_agent_id then
        -- the overlays describe the current agent's sets, not another agent's
        self.active_traits = nil
        self.active_tools = nil
    end
    local runner, err = self:load_agent(agent_identifier, options or {})
    if not runner then return false, err end
    return true, nil
end

function agent_context:switch_to_model(model_name)
    if not model_name or model_name == "" then return false, "Model name is required" end
    if not self.current_agent_id then return false, "No current agent to change model for" end
    local runner, err = self:load_agent(self.current_agent_id, { model = model_name })
    if not runner then return false, err end
    return true, nil
end

-- ours, for `wippy agents replay`: run a recorded run again from its agent.run.started record (the
-- agent compiled with the recorded config, the recorded conversation); the host's journal answers
-- every step from the log
function agent_context._replay(started)
    local config = started.config or {}
    local ctx = agent_context.new({ enable_cache = started.enable_cache, delegate_tools = config.delegate_tools })
    local compiled, err = agent_host.compile(started.spec, config)
    if not compiled then return nil, err end
    local runner = new_runner(compiled, ctx)
    runner._source = { spec = started.spec, config = config }
    local options = started.options or {}
    return run_loop(runner, prompt().new(started.input or {}), {
        run_id = started.run_id, resume = true, parent_run_id = started.parent_run_id,
        max_turns = options.max_turns, context = options.context, tool_call = options.tool_call,
    }, 0)
end

function agent_context:get_config()
    return {
        current_agent_id = self.current_agent_id,
        current_model = self.current_model,
        additional_tools_count = #self.additional_tools,
        additional_delegates_count = #self.additional_delegates,
        has_active_traits = self.active_traits ~= nil,
        has_active_tools = self.active_tools ~= nil,
        has_memory_contract = self.memory_contract ~= nil,
        cache_enabled = self.enable_cache,
        delegate_tools_enabled = self.delegate_tools.enabled ~= false,
    }
end

return agent_context
