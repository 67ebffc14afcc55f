// src/store/redis/scripts.ts
// Lua for every read-modify-write, so replicas sharing one Redis never race.

/** KEYS[1] usage hash; ARGV: credits, allowance ('' = none), ttl seconds. Returns {ok, credits*10000}. */
export const CONSUME_CREDITS = `
local used = tonumber(redis.call('HGET', KEYS[1], 'credits') or '0')
local add = tonumber(ARGV[1])
if ARGV[2] ~= '' and used + add > tonumber(ARGV[2]) + 1e-9 then
  return {0, math.floor(used * 10000 + 0.5)}
end
local total = redis.call('HINCRBYFLOAT', KEYS[1], 'credits', add)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, math.floor(tonumber(total) * 10000 + 0.5)}
`;

/** Refund never takes credits below zero. */
export const REFUND_CREDITS = `
local used = tonumber(redis.call('HGET', KEYS[1], 'credits') or '0')
local sub = tonumber(ARGV[1])
if used - sub < 0 then sub = used end
redis.call('HINCRBYFLOAT', KEYS[1], 'credits', -sub)
return 1
`;

/**
 * Rate limiting is one Lua script over a fixed window, not a library (rate-limiter-flexible) nor a sliding log:
 * - one round trip per request, atomic across replicas (Redis runs a script without interleaving other commands),
 *   and the counter carries its own PEXPIRE, so nothing needs sweeping;
 * - a fixed window maps 1:1 onto the X-RateLimit-Limit/Remaining/Reset headers (Reset = the window's end), which a
 *   sliding window cannot state exactly;
 * - O(1) memory per key (one integer), where a sliding log stores one entry per request;
 * - the known cost, up to 2× the limit across a window boundary, is acceptable for abuse protection (monthly credits,
 *   not the rate limit, are what bills).
 * The memory store implements the same fixed window, so both pass one contract suite.
 * KEYS[1] counter; ARGV: window ms. Returns {count, pttl}.
 */
export const RATE_HIT = `
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
`;

/** KEYS[1] key hash by hash, ARGV[1] revokedAt; returns 1 when newly revoked. */
export const REVOKE_KEY = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('HEXISTS', KEYS[1], 'revokedAt') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'revokedAt', ARGV[1])
return 1
`;

/**
 * KEYS[1] key hash by hash, KEYS[2] fingerprint → hash, KEYS[3] index set; ARGV: hash, fingerprint, then field/value
 * pairs. One script, so no replica ever reads a half-written key record. Returns 1 when added, 0 when it existed.
 */
export const ADD_KEY = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('SET', KEYS[2], ARGV[1])
redis.call('SADD', KEYS[3], ARGV[1])
return 1
`;
