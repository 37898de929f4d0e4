-- trim: ARGV[1] = a topic's stream, ARGV[2] = its group registry hash. Deletes the entries
-- every registered group has read and none has pending (the copies retries, held keys and
-- dead letters keep are their own). A topic without groups keeps everything: a group created
-- later at the earliest message must still see it. Consumers (one per subscribe) with nothing
-- pending and idle for an hour are removed from the group. Returns how many entries were
-- deleted.
local stream, groups_key = ARGV[1], ARGV[2]
local wanted = redis.call('HKEYS', groups_key)
if #wanted == 0 or redis.call('EXISTS', stream) == 0 then return 0 end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return { tonumber(ms), tonumber(seq) }
end
local function less(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end
local function forget_idle_consumers(key, group)
  if redis.call('EXISTS', key) == 0 then return end
  local ok, consumers = pcall(redis.call, 'XINFO', 'CONSUMERS', key, group)
  if not ok then return end
  for _, c in ipairs(consumers) do
    local name, pending, idle
    for i = 1, #c, 2 do
      if c[i] == 'name' then name = c[i + 1] end
      if c[i] == 'pending' then pending = c[i + 1] end
      if c[i] == 'idle' then idle = c[i + 1] end
    end
    if pending == 0 and idle > 3600000 then
      redis.call('XGROUP', 'DELCONSUMER', key, group, name)
    end
  end
end
local last = {}
for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local name, delivered
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] end
    if g[i] == 'last-delivered-id' then delivered = g[i + 1] end
  end
  last[name] = delivered
end
local floor = nil
for _, group in ipairs(wanted) do
  if not last[group] then return 0 end
  forget_idle_consumers(stream, group)
  forget_idle_consumers(stream .. ':g:' .. group .. ':retry', group)
  local candidate = parse(last[group])
  local pending = redis.call('XPENDING', stream, group)
  if pending[2] and pending[2] ~= false then
    local oldest = parse(pending[2])
    if less(oldest, candidate) then candidate = oldest end
  end
  if floor == nil or less(candidate, floor) then floor = candidate end
end
return redis.call('XTRIM', stream, 'MINID', string.format('%.0f-%.0f', floor[1], floor[2]))
