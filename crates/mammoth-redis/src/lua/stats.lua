-- stats of one group: ARGV[6] = min idle ms. Returns {messages, depth, in flight, retrying}.
local ctx = group_context()
local idle = ARGV[6]
local function group_info(stream)
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local m = tomap(g)
    if m.name == ctx.group then return m end
  end
  return nil
end
local function expired(stream)
  return #redis.call('XPENDING', stream, ctx.group, 'IDLE', idle, '-', '+', 100000)
end
local messages = redis.call('XLEN', ctx.stream.m)
local main = group_info(ctx.stream.m)
if not main then return { messages, 0, 0, 0 } end
local lag = main.lag
if not lag then
  lag = #redis.call('XRANGE', ctx.stream.m, '(' .. main['last-delivered-id'], '+')
end
local retry = group_info(ctx.retry)
local retry_pending = retry and retry.pending or 0
local expired_count = expired(ctx.stream.m) + (retry and expired(ctx.retry) or 0)
local held = tonumber(redis.call('GET', ctx.heldn) or '0')
local waiting_retries = redis.call('XLEN', ctx.retry) - retry_pending
local depth = lag + waiting_retries + expired_count + held
local in_flight = main.pending + retry_pending - expired_count
return { messages, depth, in_flight, redis.call('ZCARD', ctx.delayed) }
