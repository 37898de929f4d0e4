-- Shared by the consumer scripts. ARGV[1..5]: topic stream key, group, consumer, topic,
-- dead-letter stream key. Group keys are "<stream>:g:<group>:<part>" (':' is never in a
-- topic or group name, so they cannot collide with a topic's stream).
local function group_context()
  local stream, group = ARGV[1], ARGV[2]
  local pre = stream .. ':g:' .. group .. ':'
  return {
    group = group, me = ARGV[3], topic = ARGV[4], dead = ARGV[5], pre = pre,
    stream = { m = stream, r = pre .. 'retry' },
    retry = pre .. 'retry', delayed = pre .. 'delayed', wait = pre .. 'wait',
    failed = pre .. 'failed', locks = pre .. 'locks', heldn = pre .. 'heldn',
  }
end

-- The server clock: milliseconds as a number (for ZSET scores), microseconds as text.
local function now_parts()
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  return ms, t[1] .. string.format('%06d', tonumber(t[2]))
end

local function tomap(fields)
  local m = {}
  for i = 1, #fields, 2 do m[fields[i]] = fields[i + 1] end
  return m
end

-- The fields that make the message itself (id, key, payload, headers, time, sequence).
local function message_fields(m)
  local out = {}
  for _, name in ipairs({ 'id', 'k', 'p', 'h', 'at', 's' }) do
    if m[name] then
      out[#out + 1] = name
      out[#out + 1] = m[name]
    end
  end
  return out
end

-- Done with an entry in this group: acknowledged, and deleted from the group's own stream.
local function finish_entry(ctx, kind, id)
  local acked = redis.call('XACK', ctx.stream[kind], ctx.group, id)
  if kind == 'r' then redis.call('XDEL', ctx.retry, id) end
  redis.call('HDEL', ctx.failed, kind .. id)
  return acked
end

-- The message holding `key` is done: the key's next held-back message (if any) is queued on
-- the group's own stream and takes the lock, else the key is free.
local function release(ctx, msgid, key)
  if redis.call('HGET', ctx.locks, key) ~= msgid then return end
  local nxt = redis.call('LPOP', ctx.pre .. 'held:' .. key)
  if nxt then
    redis.call('DECR', ctx.heldn)
    local fields = cmsgpack.unpack(nxt)
    redis.call('XADD', ctx.retry, '*', unpack(fields))
    redis.call('HSET', ctx.locks, key, tomap(fields).id)
  else
    redis.call('HDEL', ctx.locks, key)
  end
end

-- Moves an entry to the dead-letter stream (with its group, attempts, error and failure
-- times), finishes it and frees its key; returns the dead letter's id.
local function bury(ctx, kind, id, m, attempts, err, first_us, now_us)
  local f = message_fields(m)
  for _, v in ipairs({ 'topic', ctx.topic, 'group', ctx.group, 'n', tostring(attempts),
                       'err', err, 'ff', first_us, 'lf', now_us }) do
    f[#f + 1] = v
  end
  local dead_id = redis.call('XADD', ctx.dead, '*', unpack(f))
  finish_entry(ctx, kind, id)
  if m.k then release(ctx, m.id, m.k) end
  return dead_id
end

-- True when `id` is pending for this consumer with the delivery count the receipt saw.
local function owned(ctx, kind, id, count)
  local p = redis.call('XPENDING', ctx.stream[kind], ctx.group, id, id, 1)
  return #p == 1 and p[1][2] == ctx.me and tonumber(p[1][4]) == count
end
