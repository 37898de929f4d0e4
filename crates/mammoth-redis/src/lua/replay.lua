-- replay: ARGV[1] = key prefix, ARGV[2] = dead-letter stream, ARGV[3..] = dead letter ids.
-- Each letter goes to its group's own stream as a fresh message (attempt 1) and leaves the
-- dead-letter stream, in one step. Returns how many were replayed.
local prefix, dead, replayed = ARGV[1], ARGV[2], 0
for i = 3, #ARGV do
  local e = redis.call('XRANGE', dead, ARGV[i], ARGV[i])
  if #e == 1 then
    local f, m = e[1][2], {}
    for j = 1, #f, 2 do m[f[j]] = f[j + 1] end
    local out = {}
    for _, name in ipairs({ 'id', 'k', 'p', 'h', 'at', 's' }) do
      if m[name] then
        out[#out + 1] = name
        out[#out + 1] = m[name]
      end
    end
    redis.call('XADD', prefix .. m.topic .. ':g:' .. m.group .. ':retry', '*', unpack(out))
    redis.call('XDEL', dead, ARGV[i])
    replayed = replayed + 1
  end
end
return replayed
