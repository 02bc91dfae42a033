-- wippy.embeddings:embedding_repo, native: vectors in the app's target_db, searched exactly.
--
-- The same functions, arguments and answers as Wippy's repository (value, or nil and an error
-- string). The vectors live in a db.sql.duckdb database, one table per vector length, each vector
-- scaled to unit length on the way in, so `similarity` is the cosine similarity (1 = same
-- direction). The database and the length come from the ns.dependency on wippy/embeddings.
local host = require("embeddings_host")

local embedding_repo = {}

local function missing(value)
    return value == nil or value == ""
end

local function no_vector(value)
    return type(value) ~= "table" or #value == 0
end

-- The first problem with one item, Wippy's wording, or nil.
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
    if no_vector(item.embedding) then
        return "Embedding is required"
    end
    return nil
end

function embedding_repo.add(content, content_type, origin_id, context_id, meta, embedding)
    local item = {
        content = content,
        content_type = content_type,
        origin_id = origin_id,
        context_id = context_id,
        meta = meta,
        embedding = embedding,
    }
    local problem = item_problem(item)
    if problem then
        return nil, problem
    end
    local added, err = host.add_batch({ item })
    if err then
        return nil, err
    end
    return added.items[1]
end

-- All items go in one statement: every one is stored, or none.
function embedding_repo.add_batch(batch)
    if type(batch) ~= "table" or #batch == 0 then
        return nil, "Batch is empty"
    end
    for i, item in ipairs(batch) do
        local problem = item_problem(item)
        if problem then
            return nil, "Item " .. i .. ": " .. problem
        end
    end
    return host.add_batch(batch)
end

function embedding_repo.get_by_origin(origin_id)
    if missing(origin_id) then
        return nil, "Origin ID is required"
    end
    return host.get_by_origin(origin_id)
end

function embedding_repo.delete_by_origin(origin_id)
    if missing(origin_id) then
        return nil, "Origin ID is required"
    end
    return host.delete_by_origin(origin_id)
end

function embedding_repo.delete_by_entry(entry_id)
    if missing(entry_id) then
        return nil, "Entry ID is required"
    end
    return host.delete_by_entry(entry_id)
end

-- options: content_type, origin_id (one id or a list), context_id, limit (default 10).
function embedding_repo.search_by_embedding(embedding, options)
    if no_vector(embedding) then
        return nil, "Embedding vector is required"
    end
    options = options or {}
    return host.search(embedding, {
        content_type = options.content_type,
        origin_id = options.origin_id,
        context_id = options.context_id,
        limit = options.limit or 10,
    })
end

return embedding_repo
