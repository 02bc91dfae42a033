-- wippy.embeddings:embeddings, native: texts in, vectors made by the configured model, search by text.
--
-- Wippy's functions and answers (value, or nil and an error string). The embedder is the one the
-- ns.dependency on wippy/embeddings selects (parameter `model`; by default Wippy's
-- text-embedding-3-small when the app declares it, else the offline all-MiniLM-L6-v2), called
-- through the node's LLM service; storage is wippy.embeddings:embedding_repo's.
local host = require("embeddings_host")

-- Wippy's budget for one embedding request, estimated at four characters a token.
local MAX_TOKENS_PER_REQUEST = 8000

local embeddings = {}

local function missing(value)
    return value == nil or value == ""
end

local function estimate_tokens(text)
    return math.ceil(#text / 4)
end

-- Items in runs whose estimated tokens stay within the request budget (an oversized item alone).
local function requests_of(items)
    local runs, run, used = {}, {}, 0
    for _, item in ipairs(items) do
        local tokens = estimate_tokens(item.content)
        if used + tokens > MAX_TOKENS_PER_REQUEST and #run > 0 then
            table.insert(runs, run)
            run, used = {}, 0
        end
        table.insert(run, item)
        used = used + tokens
    end
    if #run > 0 then
        table.insert(runs, run)
    end
    return runs
end

local function embed_one(text)
    local vectors, err = host.embed({ text })
    if err then
        return nil, "Failed to generate embedding: " .. err
    end
    return vectors[1]
end

local function embed_run(run)
    local texts, tokens = {}, 0
    for i, item in ipairs(run) do
        texts[i] = item.content
        tokens = tokens + estimate_tokens(item.content)
    end
    if tokens > MAX_TOKENS_PER_REQUEST then
        return nil, "Total tokens exceed maximum of " .. MAX_TOKENS_PER_REQUEST
    end
    local vectors, err = host.embed(texts)
    if err then
        return nil, "Failed to generate batch embeddings: " .. err
    end
    return vectors
end

local function item_problem(item)
    if type(item) ~= "table" then
        return "Item must be a table"
    end
    if missing(item.content) then
        return "Content is required"
    end
    if missing(item.content_type) then
        return "Content type is required"
    end
    if missing(item.origin_id) then
        return "Origin ID is required"
    end
    return nil
end

function embeddings.add(content, content_type, origin_id, context_id, meta)
    local problem = item_problem({ content = content, content_type = content_type, origin_id = origin_id })
    if problem then
        return nil, problem
    end
    local vector, err = embed_one(content)
    if err then
        return nil, err
    end
    local added, add_err = host.add_batch({ {
        content = content,
        content_type = content_type,
        origin_id = origin_id,
        context_id = context_id,
        meta = meta,
        embedding = vector,
    } })
    if add_err then
        return nil, add_err
    end
    return added.items[1]
end

-- Every text is embedded first (in requests within the token budget); then all items are stored
-- in one statement, so a failure stores nothing.
function embeddings.add_batch(batch)
    if type(batch) ~= "table" or #batch == 0 then
        return nil, "Batch is empty"
    end
    for i, item in ipairs(batch) do
        local problem = item_problem(item)
        if problem then
            return nil, "Item " .. i .. ": " .. problem
        end
    end
    local rows = {}
    for _, run in ipairs(requests_of(batch)) do
        local vectors, err = embed_run(run)
        if err then
            return nil, err
        end
        for i, item in ipairs(run) do
            table.insert(rows, {
                content = item.content,
                content_type = item.content_type,
                origin_id = item.origin_id,
                context_id = item.context_id,
                meta = item.meta,
                embedding = vectors[i],
            })
        end
    end
    return host.add_batch(rows)
end

-- options: content_type, origin_id (one id or a list), context_id, limit (default 10).
function embeddings.search(query_text, options)
    if missing(query_text) then
        return nil, "Query text is required"
    end
    options = options or {}
    local vector, err = embed_one(query_text)
    if err then
        return nil, err
    end
    return host.search(vector, {
        content_type = options.content_type,
        origin_id = options.origin_id,
        context_id = options.context_id,
        limit = options.limit or 10,
    })
end

function embeddings.find_by_type(query, content_type, options)
    if missing(query) then
        return nil, "Query is required"
    end
    if missing(content_type) then
        return nil, "Content type is required"
    end
    options = options or {}
    return embeddings.search(query, { content_type = content_type, limit = options.limit or 10 })
end

function embeddings.find_by_origin(query, origin_id, options)
    if missing(query) then
        return nil, "Query is required"
    end
    if missing(origin_id) then
        return nil, "Origin ID is required"
    end
    options = options or {}
    return embeddings.search(query, {
        origin_id = origin_id,
        content_type = options.content_type,
        context_id = options.context_id,
        limit = options.limit or 5,
    })
end

return embeddings
