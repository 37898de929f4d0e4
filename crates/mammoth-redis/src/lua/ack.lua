-- ack: ARGV[6..] = (kind, entry id, message id, key tag '-' or '+key') per delivery.
local ctx = group_context()
for i = 6, #ARGV, 4 do
  local kind, id, msgid, tag = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if finish_entry(ctx, kind, id) == 1 and tag ~= '-' then
    release(ctx, msgid, string.sub(tag, 2))
  end
end
return 1
