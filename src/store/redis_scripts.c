/* Lua sources of the Redis store's atomic operations. A shared prelude holds the
 * helpers every script needs: worker liveness (the worker-alive:$id key), lazy
 * clean-up of dead workers' connections and of dangling index members, and target
 * resolution that filters set members by their stored user and session, because
 * "$user-$session" set names are ambiguous when ids contain '-'.
 *
 * Channels (docs/redis.md): a connection's channels are the `channels` field of
 * conn:$id (names joined by "\n", which no name can hold), mirrored in
 * channel:$name (set of connection ids) and channel-workers:$name (hash worker ->
 * how many of the channel's connections it holds: a send reads this, O(workers));
 * a claim's in the `channels` field of claim:$id and claim-channel:$name. Every
 * path that adds or drops a connection or a claim goes through the helpers below,
 * so the four stay exact. */
#include "store/redis_scripts.h"

#define PRELUDE                                                                          \
    "if redis.replicate_commands then redis.replicate_commands() end\n"                 \
    /* the alive key's value, false when missing: '2' says the worker reads \
     * batches (deliver_batch) */                                                    \
    "local alive_cache = {}\n"                                                           \
    "local function worker_alive(w)\n"                                                   \
    "  local a = alive_cache[w]\n"                                                       \
    "  if a == nil then\n"                                                               \
    "    a = redis.call('GET', 'worker-alive:' .. w)\n"                                  \
    "    alive_cache[w] = a\n"                                                           \
    "  end\n"                                                                            \
    "  return a ~= false\n"                                                              \
    "end\n"                                                                              \
    "local function split(str)\n"                                                        \
    "  local out = {}\n"                                                                 \
    "  if str then for ch in string.gmatch(str, '[^\\n]+') do out[#out + 1] = ch end end\n" \
    "  return out\n"                                                                     \
    "end\n"                                                                              \
    "local function has(list, name)\n"                                                   \
    "  for i, ch in ipairs(list) do if ch == name then return i end end\n"               \
    "  return nil\n"                                                                     \
    "end\n"                                                                              \
    "local function chan_add(id, w, ch)\n"                                               \
    "  if redis.call('SADD', 'channel:' .. ch, id) == 1 then\n"                          \
    "    redis.call('HINCRBY', 'channel-workers:' .. ch, w, 1)\n"                        \
    "  end\n"                                                                            \
    "end\n"                                                                              \
    "local function chan_del(id, w, ch)\n"                                               \
    "  if redis.call('SREM', 'channel:' .. ch, id) == 1 and\n"                           \
    "     redis.call('HINCRBY', 'channel-workers:' .. ch, w, -1) <= 0 then\n"            \
    "    redis.call('HDEL', 'channel-workers:' .. ch, w)\n"                              \
    "  end\n"                                                                            \
    "end\n"                                                                              \
    /* A connection's memberships go with it, counted against the worker its hash   \
     * names (the one they were counted for). */                                      \
    "local function conn_leave_all(id)\n"                                                \
    "  local f = redis.call('HMGET', 'conn:' .. id, 'channels', 'worker')\n"             \
    "  if f[2] then for _, ch in ipairs(split(f[1])) do chan_del(id, f[2], ch) end end\n" \
    "end\n"                                                                              \
    "local function conn_drop(id, u, s, w)\n"                                            \
    "  conn_leave_all(id)\n"                                                             \
    "  redis.call('DEL', 'conn:' .. id)\n"                                               \
    "  redis.call('SREM', 'user:' .. u, id)\n"                                           \
    "  if s ~= '' then redis.call('SREM', 'user-session:' .. u .. '-' .. s, id) end\n"   \
    "  if w and w ~= '' then redis.call('SREM', 'worker-conns:' .. w, id) end\n"         \
    "end\n"                                                                              \
    "local function claim_drop(id, u, s)\n"                                              \
    "  for _, ch in ipairs(split(redis.call('HGET', 'claim:' .. id, 'channels'))) do\n"  \
    "    redis.call('SREM', 'claim-channel:' .. ch, id)\n"                               \
    "  end\n"                                                                            \
    "  redis.call('DEL', 'claim:' .. id)\n"                                              \
    "  redis.call('SREM', 'claim-user:' .. u, id)\n"                                     \
    "  if s ~= '' then redis.call('SREM', 'claim-user-session:' .. u .. '-' .. s, id) end\n" \
    "end\n"                                                                              \
    /* The target's connections on live workers: {id, user, session, worker, lastPing, \
     * channels}. A member whose conn: key is gone is removed from the set; a member   \
     * that belongs to another user/session pair sharing the set name is skipped; a   \
     * connection of a dead worker is deleted with its index entries. Precedence: id, \
     * then channel, then user (+session). */                                         \
    "local function resolve(id, user, session, channel)\n"                               \
    "  local out = {}\n"                                                                 \
    "  local function check(cid, set, byuser)\n"                                         \
    "    local f = redis.call('HMGET', 'conn:' .. cid, 'user', 'session', 'worker', 'lastPing',\n" \
    "                         'channels')\n"                                             \
    "    local u, s, w = f[1], f[2] or '', f[3]\n"                                       \
    "    if not u then\n"                                                                \
    "      if set then redis.call('SREM', set, cid) end\n"                               \
    "      return\n"                                                                     \
    "    end\n"                                                                          \
    "    if byuser and (u ~= user or (session ~= '' and s ~= session)) then return end\n" \
    "    if not w or not worker_alive(w) then\n"                                         \
    "      conn_drop(cid, u, s, w)\n"                                                       \
    "      return\n"                                                                     \
    "    end\n"                                                                          \
    "    out[#out + 1] = {cid, u, s, w, f[4] or '0', f[5] or ''}\n"                      \
    "  end\n"                                                                            \
    "  if id ~= '' then\n"                                                               \
    "    check(id, nil, false)\n"                                                        \
    "  elseif channel ~= '' then\n"                                                      \
    "    local set = 'channel:' .. channel\n"                                            \
    "    for _, cid in ipairs(redis.call('SMEMBERS', set)) do check(cid, set, false) end\n" \
    "  else\n"                                                                           \
    "    local set = 'user:' .. user\n"                                                  \
    "    if session ~= '' then set = 'user-session:' .. user .. '-' .. session end\n"    \
    "    for _, cid in ipairs(redis.call('SMEMBERS', set)) do check(cid, set, true) end\n" \
    "  end\n"                                                                            \
    "  return out\n"                                                                     \
    "end\n"                                                                              \
    /* The target's claims: {id, user, session, expiration, channels}: an id target \
     * has none; a channel target, the claims carrying the channel; else the user's  \
     * (session's). A set member whose claim is gone is removed from the set. */     \
    "local function target_claims(id, user, session, channel)\n"                         \
    "  local out = {}\n"                                                                 \
    "  if id ~= '' then return out end\n"                                                \
    "  local set = 'claim-user:' .. user\n"                                              \
    "  if channel ~= '' then set = 'claim-channel:' .. channel\n"                        \
    "  elseif session ~= '' then set = 'claim-user-session:' .. user .. '-' .. session end\n" \
    "  for _, cid in ipairs(redis.call('SMEMBERS', set)) do\n"                           \
    "    local f = redis.call('HMGET', 'claim:' .. cid, 'user', 'session', 'expiration',\n" \
    "                         'channels')\n"                                             \
    "    if not f[1] then\n"                                                             \
    "      redis.call('SREM', set, cid)\n"                                               \
    "    elseif channel ~= '' then\n"                                                    \
    "      if has(split(f[4]), channel) then\n"                                          \
    "        out[#out + 1] = {cid, f[1], f[2] or '', f[3] or '0', f[4] or ''}\n"         \
    "      end\n"                                                                        \
    "    elseif f[1] == user and (session == '' or f[2] == session) then\n"              \
    "      out[#out + 1] = {cid, f[1], f[2] or '', f[3] or '0', f[4] or ''}\n"           \
    "    end\n"                                                                          \
    "  end\n"                                                                            \
    "  return out\n"                                                                     \
    "end\n"                                                                              \
    /* The live workers holding members of a channel, O(workers): {worker -> count}  \
     * and their order. With pending, also the workers that were sent a subscription \
     * by channel to it and have not written it back yet (count 0 here): a send must \
     * reach the members they are adding (docs/redis.md, "Channels"). */           \
    "local function channel_workers(channel, pending)\n"                                 \
    "  local per, order = {}, {}\n"                                                      \
    "  local kv = redis.call('HGETALL', 'channel-workers:' .. channel)\n"                \
    "  for i = 1, #kv, 2 do\n"                                                           \
    "    local w, k = kv[i], tonumber(kv[i + 1])\n"                                      \
    "    if k and k > 0 and worker_alive(w) then\n"                                      \
    "      per[w] = k\n"                                                                 \
    "      order[#order + 1] = w\n"                                                      \
    "    end\n"                                                                          \
    "  end\n"                                                                            \
    "  if pending then\n"                                                                \
    "    kv = redis.call('HGETALL', 'channel-pending:' .. channel)\n"                    \
    "    for i = 1, #kv, 2 do\n"                                                         \
    "      local w, k = kv[i], tonumber(kv[i + 1])\n"                                    \
    "      if k and k > 0 and not per[w] and worker_alive(w) then\n"                     \
    "        per[w] = 0\n"                                                               \
    "        order[#order + 1] = w\n"                                                    \
    "      end\n"                                                                        \
    "    end\n"                                                                          \
    "  end\n"                                                                            \
    "  return per, order\n"                                                              \
    "end\n"                                                                              \
    /* Adds a claim id to an index set that lives as long as its longest claim. */    \
    "local function claim_index(set, id, exp, now)\n"                                    \
    "  redis.call('SADD', set, id)\n"                                                    \
    "  local ttl = redis.call('TTL', set)\n"                                             \
    "  if ttl < 0 or now + ttl < exp then redis.call('EXPIREAT', set, exp) end\n"        \
    "end\n"

/* Index sets expire with their longest-lived claim, so a user who never connects
 * leaves nothing behind. A claim born expired is not stored (EXPIREAT in the past
 * would delete the key at once, and on a set it would drop the other members). */
static const char claim_create_lua[] = PRELUDE
    "local id, u, s, e, chs = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]\n"
    "local key = 'claim:' .. id\n"
    "if redis.call('EXISTS', key) == 1 then return 0 end\n"
    "local exp = tonumber(e)\n"
    "if not exp then return redis.error_reply('ERR invalid expiration') end\n"
    "local now = tonumber(redis.call('TIME')[1])\n"
    "if exp <= now then return 1 end\n"
    "if s ~= '' then\n"
    "  redis.call('HSET', key, 'user', u, 'session', s, 'expiration', e)\n"
    "else\n"
    "  redis.call('HSET', key, 'user', u, 'expiration', e)\n"
    "end\n"
    "if chs ~= '' then redis.call('HSET', key, 'channels', chs) end\n"
    "redis.call('EXPIREAT', key, e)\n"
    "claim_index('claim-user:' .. u, id, exp, now)\n"
    "if s ~= '' then claim_index('claim-user-session:' .. u .. '-' .. s, id, exp, now) end\n"
    "for _, ch in ipairs(split(chs)) do claim_index('claim-channel:' .. ch, id, exp, now) end\n"
    "return 1\n";

static const char claim_take_lua[] = PRELUDE
    "local id = ARGV[1]\n"
    "local f = redis.call('HMGET', 'claim:' .. id, 'user', 'session', 'expiration', 'channels')\n"
    "if not f[1] then return false end\n"
    "claim_drop(id, f[1], f[2] or '')\n"
    "return {f[1], f[2] or '', f[3] or '', f[4] or ''}\n";

/* The target's live connections counted per worker, O(workers) for a channel:
 * per = {worker -> connections}, order = the workers in a stable order. A channel
 * also reaches the workers still writing back a subscription by channel to it
 * (counted 0: channel_workers with pending). `mark` is nil for PUBLISH_PER_WORKER.
 * Shared by deliver and resolve. */
#define RESOLVE_PER_WORKER                                                 \
    "local per, order, mark = {}, {}, nil\n"                               \
    "if id == '' and channel ~= '' then\n"                                 \
    "  per, order = channel_workers(channel, true)\n"                      \
    "else\n"                                                               \
    "  target_workers(id, user, session, per, order)\n"                    \
    "end\n"

/* One PUBLISH per worker, not per connection: the worker matches the target
 * against its own connections again. PUBLISH answering 0 means the worker is alive
 * (its key is fresh) but its subscription is down: counted as unreachable. A
 * channel target is resolved from channel-workers:$name alone, O(workers): a
 * dead worker's entry is skipped (its sweep removes it). ARGV: id, user, session,
 * channel, payload, drop claims. `mark`, when set, is called with each worker
 * that received the message. */
#define PUBLISH_PER_WORKER                                                               \
    "local n, workers, missed = 0, 0, 0\n"                                               \
    "for _, w in ipairs(order) do\n"                                                     \
    "  if redis.call('PUBLISH', 'worker:' .. w, payload) > 0 then\n"                     \
    "    n = n + per[w]\n"                                                               \
    "    workers = workers + 1\n"                                                        \
    "    if mark then mark(w) end\n"                                                     \
    "  else\n"                                                                           \
    "    missed = missed + 1\n"                                                          \
    "  end\n"                                                                            \
    "end\n"

/* resolve() for the send scripts: the same checks and clean-up, but it only
 * counts the live connections per worker (per[w], workers in first-seen order),
 * reading the three fields it needs and building no per-connection table: the
 * hot path of every /send. An id or a user (+session) target; a channel target
 * is read from channel-workers: by the caller. */
#define TARGET_WORKERS                                                                   \
    "local function count_conn(cid, set, user, session, per, order)\n"                   \
    "  local f = redis.call('HMGET', 'conn:' .. cid, 'user', 'session', 'worker')\n"      \
    "  local u, s, w = f[1], f[2] or '', f[3]\n"                                         \
    "  if not u then\n"                                                                 \
    "    if set then redis.call('SREM', set, cid) end\n"                                \
    "    return\n"                                                                      \
    "  end\n"                                                                           \
    "  if set and (u ~= user or (session ~= '' and s ~= session)) then return end\n"     \
    "  if not w or not worker_alive(w) then\n"                                           \
    "    conn_drop(cid, u, s, w)\n"                                                      \
    "    return\n"                                                                      \
    "  end\n"                                                                           \
    "  if not per[w] then\n"                                                            \
    "    per[w] = 0\n"                                                                  \
    "    order[#order + 1] = w\n"                                                       \
    "  end\n"                                                                           \
    "  per[w] = per[w] + 1\n"                                                           \
    "end\n"                                                                             \
    "local function target_workers(id, user, session, per, order)\n"                     \
    "  if id ~= '' then\n"                                                              \
    "    count_conn(id, nil, user, session, per, order)\n"                              \
    "    return\n"                                                                      \
    "  end\n"                                                                           \
    "  local set = 'user:' .. user\n"                                                    \
    "  if session ~= '' then set = 'user-session:' .. user .. '-' .. session end\n"      \
    "  for _, cid in ipairs(redis.call('SMEMBERS', set)) do\n"                            \
    "    count_conn(cid, set, user, session, per, order)\n"                              \
    "  end\n"                                                                           \
    "end\n"

static const char deliver_lua[] = PRELUDE TARGET_WORKERS
    "local id, user, session, channel, payload = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]\n"
    RESOLVE_PER_WORKER
    PUBLISH_PER_WORKER
    "if ARGV[6] == '1' then\n"
    "  for _, c in ipairs(target_claims(id, user, session, channel)) do\n"
    "    claim_drop(c[1], c[2], c[3])\n"
    "  end\n"
    "end\n"
    "return {n, workers, missed}\n";

/* Big sends (store_redis.c, "Big sends"): the deliver script without the payload,
 * which never enters Lua (Redis 7 hashes every byte of every Lua string); the API
 * PUBLISHes it itself to each worker returned. ARGV: id, user, session, channel.
 * -> {worker, connections, worker, connections, ...}. */
static const char resolve_lua[] = PRELUDE TARGET_WORKERS
    "local id, user, session, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"
    RESOLVE_PER_WORKER
    "local out = {}\n"
    "for _, w in ipairs(order) do\n"
    "  out[#out + 1] = w\n"
    "  out[#out + 1] = per[w]\n"
    "end\n"
    "return out\n";

/* Several sends at once (the API's sends of one loop turn, store_redis.c): ARGV
 * count, then id, user, session, channel, payload per send, in call order. Each
 * is resolved as by deliver; then each worker gets one PUBLISH of all the
 * payloads meant for it, in call order: the payload itself when there is one, a
 * BATCH WorkerMessage (kind 7 in field 1, then each payload as an embedded
 * message in field 7: what '\8\7' and '\58' .. varint(length) spell in Lua) when
 * there are several and the worker's alive key says it reads them ('2'), else
 * one PUBLISH per payload. -> {connections, workers, unreachable} per send,
 * flattened. */
static const char deliver_batch_lua[] = PRELUDE TARGET_WORKERS
    "local function varint(n)\n"
    "  local out = ''\n"
    "  while n >= 128 do\n"
    "    out = out .. string.char(n % 128 + 128)\n"
    "    n = math.floor(n / 128)\n"
    "  end\n"
    "  return out .. string.char(n)\n"
    "end\n"
    "local k = tonumber(ARGV[1])\n"
    "local lists, order, sends = {}, {}, {}\n"
    "for i = 1, k do\n"
    "  local a = 2 + (i - 1) * 5\n"
    "  local id, user, session, channel = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]\n"
    "  local per, mine = {}, {}\n"
    "  if id == '' and channel ~= '' then\n"
    "    per, mine = channel_workers(channel, true)\n"
    "  else\n"
    "    target_workers(id, user, session, per, mine)\n"
    "  end\n"
    "  for _, w in ipairs(mine) do\n"
    "    local l = lists[w]\n"
    "    if not l then\n"
    "      l = {}\n"
    "      lists[w] = l\n"
    "      order[#order + 1] = w\n"
    "    end\n"
    "    l[#l + 1] = a + 4\n"
    "  end\n"
    "  sends[i] = {per, mine}\n"
    "end\n"
    "local reached = {}\n"
    "for _, w in ipairs(order) do\n"
    "  local l, ch, r = lists[w], 'worker:' .. w, 0\n"
    "  if #l == 1 then\n"
    "    r = redis.call('PUBLISH', ch, ARGV[l[1]])\n"
    "  elseif alive_cache[w] == '2' then\n"
    "    local parts = {'\\8\\7'}\n"
    "    for _, at in ipairs(l) do\n"
    "      local p = ARGV[at]\n"
    "      parts[#parts + 1] = '\\58' .. varint(#p)\n"
    "      parts[#parts + 1] = p\n"
    "    end\n"
    "    r = redis.call('PUBLISH', ch, table.concat(parts))\n"
    "  else\n"
    "    for _, at in ipairs(l) do r = redis.call('PUBLISH', ch, ARGV[at]) end\n"
    "  end\n"
    "  reached[w] = r > 0\n"
    "end\n"
    "local out = {}\n"
    "for i = 1, k do\n"
    "  local per, mine = sends[i][1], sends[i][2]\n"
    "  local n, workers, missed = 0, 0, 0\n"
    "  for _, w in ipairs(mine) do\n"
    "    if reached[w] then\n"
    "      n = n + per[w]\n"
    "      workers = workers + 1\n"
    "    else\n"
    "      missed = missed + 1\n"
    "    end\n"
    "  end\n"
    "  out[#out + 1] = n\n"
    "  out[#out + 1] = workers\n"
    "  out[#out + 1] = missed\n"
    "end\n"
    "return out\n";

/* (Un)subscribe. ARGV: id, user, session, channel, name, join ('1'/'0'), ignore
 * claims ('1'/'0'), payload.
 * By id or user: the target's connections (and, unless ignoreClaims, claims) join
 * or leave ARGV[5] here, before the answer; then one PUBLISH per worker holding
 * them tells it to update its own index. A send that follows is published after
 * it on the same worker channel, so it meets the new membership.
 * By channel: O(workers), never per member. The source channel's workers
 * (channel-workers:, as a send reads it) each get the message and apply it to
 * their own members of it, then write those memberships back themselves
 * (chan_apply, in batches). For a join, each worker reached is first counted in
 * channel-pending:$name until it has written it back, so a send to the channel
 * issued after the answer is published to it (after this message) even before
 * its count exists. The claims carrying the source channel are few and pending:
 * they are changed here. */
static const char subscribe_lua[] = PRELUDE
    "local id, user, session, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"
    "local name, join, payload = ARGV[5], ARGV[6] == '1', ARGV[8]\n"
    "local by_channel = id == '' and channel ~= ''\n"
    "local per, order, moved, mark = {}, {}, {}, nil\n"
    "if by_channel then\n"
    "  per, order = channel_workers(channel, false)\n"
    /* An hour is far beyond any worker's lag (Redis drops a subscriber whose
     * backlog grows that old); it bounds marks whose message was lost. */
    "  if join then\n"
    "    mark = function(w)\n"
    "      redis.call('HINCRBY', 'channel-pending:' .. name, w, 1)\n"
    "      redis.call('EXPIRE', 'channel-pending:' .. name, 3600)\n"
    "    end\n"
    "  end\n"
    "else\n"
    "  for _, c in ipairs(resolve(id, user, session, channel)) do\n"
    "    local cid, w = c[1], c[4]\n"
    "    local list = split(c[6])\n"
    "    local at = has(list, name)\n"
    "    if not per[w] then\n"
    "      per[w], moved[w] = 0, 0\n"
    "      order[#order + 1] = w\n"
    "    end\n"
    "    per[w] = per[w] + 1\n"
    "    if join and not at then\n"
    "      list[#list + 1] = name\n"
    "      redis.call('HSET', 'conn:' .. cid, 'channels', table.concat(list, '\\n'))\n"
    "      moved[w] = moved[w] + redis.call('SADD', 'channel:' .. name, cid)\n"
    "    elseif not join and at then\n"
    "      table.remove(list, at)\n"
    "      redis.call('HSET', 'conn:' .. cid, 'channels', table.concat(list, '\\n'))\n"
    "      moved[w] = moved[w] + redis.call('SREM', 'channel:' .. name, cid)\n"
    "    end\n"
    "  end\n"
    /* the counts of chan_add/chan_del, once per worker rather than per member */
    "  for _, w in ipairs(order) do\n"
    "    if moved[w] > 0 and join then\n"
    "      redis.call('HINCRBY', 'channel-workers:' .. name, w, moved[w])\n"
    "    elseif moved[w] > 0 and\n"
    "           redis.call('HINCRBY', 'channel-workers:' .. name, w, -moved[w]) <= 0 then\n"
    "      redis.call('HDEL', 'channel-workers:' .. name, w)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if ARGV[7] ~= '1' then\n"
    "  local now = tonumber(redis.call('TIME')[1])\n"
    "  for _, c in ipairs(target_claims(id, user, session, channel)) do\n"
    "    local exp = tonumber(c[4])\n"
    "    local list = split(c[5])\n"
    "    local at = has(list, name)\n"
    "    if exp and exp > now and (join and not at or not join and at) then\n"
    "      if join then list[#list + 1] = name else table.remove(list, at) end\n"
    "      redis.call('HSET', 'claim:' .. c[1], 'channels', table.concat(list, '\\n'))\n"
    "      if join then\n"
    "        claim_index('claim-channel:' .. name, c[1], exp, now)\n"
    "      else\n"
    "        redis.call('SREM', 'claim-channel:' .. name, c[1])\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "end\n"
    PUBLISH_PER_WORKER
    "return {n, workers, missed}\n";

/* A worker writes back a subscription by channel it applied to its index (store.h
 * conns_subscribed): the connections whose membership of ARGV[2] it changed, at
 * most a batch per call. Each is checked against its record (still this worker's)
 * and its `channels` list edited, not overwritten, so a subscription by id or user
 * recorded by the API meanwhile is kept. A join inserts the name right after the
 * channel that precedes it in the worker's list ('' : first; not found: last), so
 * a channel the API added meanwhile (its message not yet applied by the worker)
 * stays after it, in the order the subscriptions were answered. ARGV: worker,
 * name, join ('1'/'0'), last ('1': the batch that ends the message: its pending
 * mark goes), then (id, channel before it) pairs for a join, ids for a leave.
 * -> how many memberships changed. */
static const char chan_apply_lua[] = PRELUDE
    "local w, name, join, last = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[4] == '1'\n"
    "local moved, step = 0, join and 2 or 1\n"
    "for i = 5, #ARGV, step do\n"
    "  local cid = ARGV[i]\n"
    "  local f = redis.call('HMGET', 'conn:' .. cid, 'worker', 'channels')\n"
    "  if f[1] == w then\n"
    "    local list = split(f[2])\n"
    "    local at = has(list, name)\n"
    "    if join and not at then\n"
    "      local pos, before = #list + 1, ARGV[i + 1]\n"
    "      if before == '' then pos = 1\n"
    "      else local b = has(list, before); if b then pos = b + 1 end end\n"
    "      table.insert(list, pos, name)\n"
    "      redis.call('HSET', 'conn:' .. cid, 'channels', table.concat(list, '\\n'))\n"
    "      moved = moved + redis.call('SADD', 'channel:' .. name, cid)\n"
    "    elseif not join and at then\n"
    "      table.remove(list, at)\n"
    "      redis.call('HSET', 'conn:' .. cid, 'channels', table.concat(list, '\\n'))\n"
    "      moved = moved + redis.call('SREM', 'channel:' .. name, cid)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local cw = 'channel-workers:' .. name\n"
    "if join then\n"
    "  if moved > 0 then redis.call('HINCRBY', cw, w, moved) end\n"
    "  local pk = 'channel-pending:' .. name\n"
    "  if last and redis.call('HINCRBY', pk, w, -1) <= 0 then redis.call('HDEL', pk, w) end\n"
    "elseif moved > 0 and redis.call('HINCRBY', cw, w, -moved) <= 0 then\n"
    "  redis.call('HDEL', cw, w)\n"
    "end\n"
    "return moved\n";

static const char info_lua[] = PRELUDE
    "local conns, claims = {}, {}\n"
    "for _, c in ipairs(resolve(ARGV[1], ARGV[2], ARGV[3], ARGV[4])) do\n"
    "  for _, v in ipairs({c[1], c[4], c[5], c[2], c[3], c[6]}) do conns[#conns + 1] = v end\n"
    "end\n"
    "local now = tonumber(redis.call('TIME')[1])\n"
    "for _, c in ipairs(target_claims(ARGV[1], ARGV[2], ARGV[3], ARGV[4])) do\n"
    "  local e = tonumber(c[4])\n"
    "  if e and e > now then\n"
    "    for _, v in ipairs({c[1], c[4], c[2], c[3], c[5]}) do claims[#claims + 1] = v end\n"
    "  end\n"
    "end\n"
    "return {conns, claims}\n";

/* SET NX on the worker key: a registration that finds it missing means Redis lost
 * data since the last heartbeat, so the worker must register everything again.
 * ARGV[8], when not empty, is a REGISTERED WorkerMessage (packed by the caller)
 * published to the worker's own channel once the record is written: on that
 * FIFO it follows every (un)subscription published before this registration
 * (whose effect on this connection the record just replaced, or which could not
 * see it) and precedes every later one, so the worker knows which of them to
 * apply to its index (docs/redis.md, "Channels"). */
static const char conn_register_lua[] = PRELUDE
    "local id, u, s, w, t, chs = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[7]\n"
    "local key = 'conn:' .. id\n"
    "conn_leave_all(id)\n"
    "redis.call('DEL', key)\n"
    "if s ~= '' then\n"
    "  redis.call('HSET', key, 'user', u, 'session', s, 'worker', w, 'lastPing', t)\n"
    "else\n"
    "  redis.call('HSET', key, 'user', u, 'worker', w, 'lastPing', t)\n"
    "end\n"
    "if chs ~= '' then redis.call('HSET', key, 'channels', chs) end\n"
    "for _, ch in ipairs(split(chs)) do chan_add(id, w, ch) end\n"
    "redis.call('SADD', 'user:' .. u, id)\n"
    "if s ~= '' then redis.call('SADD', 'user-session:' .. u .. '-' .. s, id) end\n"
    "redis.call('SADD', 'worker-conns:' .. w, id)\n"
    "redis.call('SADD', 'workers', w)\n"
    "if ARGV[8] and ARGV[8] ~= '' then redis.call('PUBLISH', 'worker:' .. w, ARGV[8]) end\n"
    "local ttl = tonumber(ARGV[6])\n"
    "if ttl > 0 and redis.call('SET', 'worker-alive:' .. w, '2', 'EX', ttl, 'NX') then\n"
    "  return 2\n"
    "end\n"
    "return 1\n";

/* The worker named in the hash may differ from the caller's (a stale entry from a
 * restored snapshot): both indexes are cleaned. */
static const char conn_unregister_lua[] = PRELUDE
    "local w = redis.call('HGET', 'conn:' .. ARGV[1], 'worker')\n"
    "if w then redis.call('SREM', 'worker-conns:' .. w, ARGV[1]) end\n"
    "conn_drop(ARGV[1], ARGV[2], ARGV[3], ARGV[4])\n"
    "return 1\n";

/* Resync, step 1: set the worker's index aside; the registrations that follow
 * build it again from the worker's truth. */
static const char resync_begin_lua[] = PRELUDE
    "local set, old = 'worker-conns:' .. ARGV[1], 'worker-conns-old:' .. ARGV[1]\n"
    "if redis.call('EXISTS', set) == 1 then\n"
    "  redis.call('SUNIONSTORE', old, old, set)\n"
    "  redis.call('DEL', set)\n"
    "  redis.call('EXPIRE', old, ARGV[2])\n"
    "end\n"
    "return 1\n";

/* Resync, step 2: what the worker did not register again is stale (a restored
 * snapshot, a lost unregistration): dropped, at most ARGV[2] per call (-> 1 when
 * some are left, 0 when done). A connection re-registered since is kept. */
static const char resync_end_lua[] = PRELUDE
    "local w, budget = ARGV[1], tonumber(ARGV[2])\n"
    "local old = 'worker-conns-old:' .. w\n"
    "for _, id in ipairs(redis.call('SPOP', old, budget)) do\n"
    "  if redis.call('SISMEMBER', 'worker-conns:' .. w, id) == 0 then\n"
    "    local f = redis.call('HMGET', 'conn:' .. id, 'user', 'session', 'worker')\n"
    "    if f[1] and f[3] == w then conn_drop(id, f[1], f[2] or '', w) end\n"
    "  end\n"
    "end\n"
    "return redis.call('EXISTS', old)\n";

/* Run by every live worker at each heartbeat: the connections of workers whose
 * alive key is gone (killed, never cleaned up) are deleted with their index
 * entries, at most ARGV[1] per call, so that a user who is never looked up again
 * leaves nothing behind. O(workers + budget), never O(keys). */
static const char sweep_lua[] = PRELUDE
    "local budget = tonumber(ARGV[1])\n"
    "for _, w in ipairs(redis.call('SMEMBERS', 'workers')) do\n"
    "  if budget <= 0 then break end\n"
    "  if not worker_alive(w) then\n"
    "    local set = 'worker-conns:' .. w\n"
    "    local ids = redis.call('SPOP', set, budget)\n"
    "    budget = budget - #ids\n"
    "    for _, id in ipairs(ids) do\n"
    "      local f = redis.call('HMGET', 'conn:' .. id, 'user', 'session', 'worker')\n"
    "      if f[1] and f[3] == w then conn_drop(id, f[1], f[2] or '', w) end\n"
    "    end\n"
    "    if redis.call('EXISTS', set) == 0 and\n"
    "       redis.call('EXISTS', 'worker-conns-old:' .. w) == 0 then\n"
    "      redis.call('SREM', 'workers', w)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "return budget\n";

/* A worker that drained leaves nothing behind: normally its connections were
 * unregistered one by one as they closed, so this finds empty sets and only
 * deletes the worker's own keys; whatever an unregistration missed goes here. */
static const char worker_leave_lua[] = PRELUDE
    "local w, budget = ARGV[1], tonumber(ARGV[2])\n"
    "local sets = {'worker-conns:' .. w, 'worker-conns-old:' .. w}\n"
    "for _, set in ipairs(sets) do\n"
    "  for _, id in ipairs(redis.call('SPOP', set, budget)) do\n"
    "    local f = redis.call('HMGET', 'conn:' .. id, 'user', 'session', 'worker')\n"
    "    if f[1] and f[3] == w then conn_drop(id, f[1], f[2] or '', w) end\n"
    "  end\n"
    "  if redis.call('EXISTS', set) == 1 then return 1 end\n"
    "end\n"
    "redis.call('DEL', 'worker-alive:' .. w)\n"
    "redis.call('SREM', 'workers', w)\n"
    "return 0\n";

static const char conn_touch_lua[] = PRELUDE
    "local key = 'conn:' .. ARGV[1]\n"
    "if redis.call('EXISTS', key) == 0 then return 0 end\n"
    "redis.call('HSET', key, 'lastPing', ARGV[2])\n"
    "return 1\n";

const redis_script_t redis_scripts[REDIS_SCRIPT_COUNT] = {
    [REDIS_SCRIPT_CLAIM_CREATE] = {"claim_create", claim_create_lua},
    [REDIS_SCRIPT_CLAIM_TAKE] = {"claim_take", claim_take_lua},
    [REDIS_SCRIPT_DELIVER] = {"deliver", deliver_lua},
    [REDIS_SCRIPT_RESOLVE] = {"resolve", resolve_lua},
    [REDIS_SCRIPT_DELIVER_BATCH] = {"deliver_batch", deliver_batch_lua},
    [REDIS_SCRIPT_INFO] = {"info", info_lua},
    [REDIS_SCRIPT_SUBSCRIBE] = {"subscribe", subscribe_lua},
    [REDIS_SCRIPT_CHAN_APPLY] = {"chan_apply", chan_apply_lua},
    [REDIS_SCRIPT_CONN_REGISTER] = {"conn_register", conn_register_lua},
    [REDIS_SCRIPT_CONN_UNREGISTER] = {"conn_unregister", conn_unregister_lua},
    [REDIS_SCRIPT_CONN_TOUCH] = {"conn_touch", conn_touch_lua},
    [REDIS_SCRIPT_RESYNC_BEGIN] = {"resync_begin", resync_begin_lua},
    [REDIS_SCRIPT_RESYNC_END] = {"resync_end", resync_end_lua},
    [REDIS_SCRIPT_SWEEP] = {"sweep", sweep_lua},
    [REDIS_SCRIPT_WORKER_LEAVE] = {"worker_leave", worker_leave_lua},
};
