local io = require("io")
local agent_context = require("agent_context")
local prompt = require("prompt")

--- Ask the helper agent one question; it may call its tool before it answers.
local function main(question: string?): integer
    question = question or "How many words are in 'the quick brown fox jumps'?"
    local runner, err = agent_context.new():load_agent("assistant:helper")
    if not runner then
        io.print("cannot load the agent: " .. tostring(err))
        return 1
    end
    local conversation = prompt.new()
    conversation:add_user(question)
    local answer, run_err = runner:run(conversation, { max_turns = 4 })
    if not answer then
        io.print("the agent failed: " .. tostring(run_err))
        return 1
    end
    io.print("Q: " .. question)
    io.print("A: " .. tostring(answer.result))
    io.print("(" .. tostring(answer.turns) .. " model calls)")
    return 0
end

return { main = main }
