#!/usr/bin/env node
// Two real Baileys sessions that talk to each other, for waauth's interop tests.
//
//   node session_pair.mjs create     --baileys 6|7 --dir DIR [--pn-only] [--prekeys N]
//   node session_pair.mjs exchange   --baileys 6|7 --dir DIR [--from A|B] [--to B|A] [--group] [--count N] [--rekey]
//   node session_pair.mjs dump       --baileys 6|7 --dir FOLDER [--pair PAIR.json]
//   node session_pair.mjs write-loop --baileys 6|7 --dir DIR [--interval-ms 20]
//
// Every command prints one JSON object on stdout at the end (write-loop also prints one `{"step":N}` line per
// completed step first); logs go to stderr. Exit 0 on success; on failure `{"ok":false,"error":...}` and exit 1
// (2 for bad usage). See README.md ("Live session pair").
//
// All session state lives in DIR/A and DIR/B, two folders read and written only by Baileys'
// useMultiFileAuthState, through the store stack a socket uses:
//   addTransactionCapability(makeCacheableSignalKeyStore(useMultiFileAuthState(folder).state.keys)) +
//   makeLibSignalRepository, and saveCreds on every creds.update.
// DIR/pair.json (outside the session folders, written once by `create`, never changed afterwards) holds only
// public metadata: the two accounts' jids, the addressing mode, the group id and the key ids stored by `create`.
// There is no network: the "server" is simulated by reading the other party's uploaded bundle from its folder
// through its own Baileys store, and messages are handed over in memory.

import { Console } from 'node:console'
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { basename, dirname, join, resolve } from 'node:path'
import { UsageError, KNOWN_TYPES, TX_OPTS, baileysFileName, loadBaileys, makeLogSink, makeProtocol, nowSec, splitFileName } from './lib.mjs'

// ---------------------------------------------------------------- output
// stdout carries only this script's JSON: libsignal writes to console.log/info ("Closing session: <record>"),
// so the console goes to stderr (records are summarized unless --verbose)
const VERBOSE = process.argv.includes('--verbose')
globalThis.console = new Console({ stdout: process.stderr, stderr: process.stderr, inspectOptions: { depth: VERBOSE ? 4 : 0 } })
for (const level of ['log', 'info', 'debug', 'warn', 'error']) {
	const orig = console[level].bind(console)
	console[level] = (...a) => orig(...(VERBOSE ? a : a.map(x => (typeof x === 'string' ? x : `<${x?.constructor?.name ?? typeof x}>`))))
}
const out = obj => process.stdout.write(JSON.stringify(obj) + '\n')
// exit only once stdout is flushed: a pipe takes 64 KiB at a time and process.exit drops the rest (dump output
// is larger than that); the explicit exit is needed because Baileys' caches keep timers alive
// (never resolves: `await finish(...)` stops the script)
const finish = (obj, code = 0) => {
	process.stdout.write(JSON.stringify(obj) + '\n', () => process.exit(code))
	return new Promise(() => {})
}
class StepError extends Error {}

// ---------------------------------------------------------------- arguments
const argv = process.argv.slice(2)
const COMMAND = argv[0]
const FLAGS = new Set(['group', 'pn-only', 'rekey', 'verbose'])
const VALUED = new Set(['baileys', 'dir', 'from', 'to', 'count', 'interval-ms', 'prekeys', 'pair'])
const opts = {}
for (let i = 1; i < argv.length; i++) {
	const a = argv[i]
	if (!a.startsWith('--')) await finish({ ok: false, error: `unexpected argument ${JSON.stringify(a)}` }, 2)
	const name = a.slice(2)
	if (!FLAGS.has(name) && !VALUED.has(name)) await finish({ ok: false, error: `unknown option --${name}` }, 2)
	if (FLAGS.has(name)) opts[name] = true
	else if (i + 1 < argv.length) opts[name] = argv[++i]
	else await finish({ ok: false, error: `--${name} needs a value` }, 2)
}
const COMMANDS = ['create', 'exchange', 'dump', 'write-loop']
if (!COMMANDS.includes(COMMAND)) {
	await finish({ ok: false, error: `usage: node session_pair.mjs ${COMMANDS.join('|')} --baileys 6|7 --dir DIR [...]` }, 2)
}
if (!opts.dir) await finish({ ok: false, error: '--dir is required' }, 2)
const intOpt = (name, dflt, min = 0) => {
	if (opts[name] === undefined) return dflt
	const n = Number(opts[name])
	if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}`)
	return n
}

let BL
try {
	BL = await loadBaileys(opts.baileys)
} catch (e) {
	await finish({ ok: false, error: e.message }, e instanceof UsageError ? 2 : 1)
}
const { B, IS7, libsignal, makeLibSignalRepository, processMessage, tcTokenUtils } = BL
const {
	BufferJSON,
	addTransactionCapability,
	chatModificationToAppPatch,
	configureSuccessfulPairing,
	encodeSyncdPatch,
	getNextPreKeys,
	jidDecode,
	makeCacheableSignalKeyStore,
	newLTHashState,
	parseAndInjectE2ESessions,
	signedKeyPair,
	useMultiFileAuthState
} = B
const P = makeProtocol(BL)
const LOG = makeLogSink(BufferJSON, { verbose: !!opts.verbose })
const toJSONValue = v => (v === null || v === undefined ? null : JSON.parse(JSON.stringify(v, BufferJSON.replacer)))
const exists = p => stat(p).then(() => true, () => false)

// ---------------------------------------------------------------- the two accounts
const PARTIES = {
	A: { pnUser: '5511900000001', lidUser: '201000000000001', device: 3, bizName: 'Party A' },
	B: { pnUser: '5511900000002', lidUser: '202000000000002', device: 5, bizName: 'Party B' }
}
const GROUP = '120363400000000001@g.us'
const APP_KEY_IDS = {
	// base64 'AAAAAG5L', 'AAAAAT7/' ('/'), 'AAAAAPv/+w==' ('/', '+', '='); the last one becomes myAppStateKeyId
	A: [[0, 0, 0, 0, 0x6e, 0x4b], [0, 0, 0, 1, 0x3e, 0xff], [0, 0, 0, 0, 0xfb, 0xff, 0xfb]],
	// 'AAAAAm5L', 'AAAAAz7/', 'AAAAAvv/+w=='
	B: [[0, 0, 0, 2, 0x6e, 0x4b], [0, 0, 0, 3, 0x3e, 0xff], [0, 0, 0, 2, 0xfb, 0xff, 0xfb]]
}
const REQUIRED_TYPES = IS7
	? ['pre-key', 'session', 'sender-key', 'sender-key-memory', 'app-state-sync-key', 'app-state-sync-version', 'lid-mapping', 'device-list', 'tctoken', 'identity-key']
	: ['pre-key', 'session', 'sender-key', 'sender-key-memory', 'app-state-sync-key', 'app-state-sync-version']

const readPair = async dir => {
	const file = join(dir, 'pair.json')
	let pair
	try {
		pair = JSON.parse(await readFile(file, 'utf-8'))
	} catch (e) {
		throw new StepError(`cannot read ${file} (written by \`create\`): ${e.message}`)
	}
	if (pair.format !== 'waauth-session-pair-1') throw new StepError(`${file}: unknown format ${pair.format}`)
	return pair
}

// ---------------------------------------------------------------- one party = one Baileys session folder
const openParty = async (name, folder, info, { fresh = false } = {}) => {
	if (!fresh) {
		const st = await stat(folder).catch(() => null)
		if (!st?.isDirectory()) throw new StepError(`session folder ${folder} does not exist`)
		if (!(await exists(join(folder, 'creds.json')))) throw new StepError(`${folder}/creds.json does not exist`)
	}
	const { state, saveCreds } = await useMultiFileAuthState(folder)
	const { creds } = state
	if (!fresh) {
		// a missing or unparsable creds.json reads as brand-new creds in Baileys: refuse to go on with those
		if (!creds.me?.id) {
			throw new StepError(`${folder}/creds.json has no "me": Baileys read it as brand-new creds (torn or not a paired session)`)
		}
		if (jidDecode(creds.me.id)?.user !== jidDecode(info.pn).user) {
			throw new StepError(`${folder}/creds.json belongs to ${creds.me.id}, pair.json says ${info.pn}`)
		}
	}
	const logger = LOG.makeLogger(name)
	// records which (type, id) exist, from the writes that reach Baileys' file store (only used by `create`)
	const ids = {}
	const tracked = {
		get: (type, list) => state.keys.get(type, list),
		set: async data => {
			await state.keys.set(data)
			for (const type in data) {
				for (const id in data[type]) {
					if (data[type][id]) (ids[type] ||= new Set()).add(id)
					else ids[type]?.delete(id)
				}
			}
		}
	}
	const keys = addTransactionCapability(makeCacheableSignalKeyStore(tracked, logger), logger, TX_OPTS)
	const repo = makeLibSignalRepository({ creds, keys }, logger)
	// what the socket does on 'creds.update' (merge) followed by the app's ev.on('creds.update', saveCreds)
	const credsUpdate = async update => {
		Object.assign(creds, update)
		await saveCreds()
	}
	return { ...info, name, folder, creds, keys, repo, saveCreds, credsUpdate, logger, ids }
}

// ---------------------------------------------------------------- the simulated server
// The uploaded bundle of `to`: identity, signed pre-key and its lowest uploaded one-time pre-key still present,
// read through `to`'s own Baileys store (the folder listing only says which pre-key ids to ask for).
const preKeyIdsOnDisk = async party =>
	(await readdir(party.folder))
		.map(n => /^pre-key-(\d+)\.json$/.exec(n))
		.filter(Boolean)
		.map(m => Number(m[1]))
		.sort((a, b) => a - b)

const fetchBundle = async to => {
	for (const id of await preKeyIdsOnDisk(to)) {
		if (id >= to.creds.firstUnuploadedPreKeyId) continue
		const { [String(id)]: preKey } = await to.keys.get('pre-key', [String(id)])
		if (preKey) return { node: P.bundleNode({ jid: to.jid, creds: to.creds, preKeyId: id, preKey }), preKeyId: id }
	}
	return { node: P.bundleNode({ jid: to.jid, creds: to.creds }), preKeyId: null }
}

// `from` (re)builds its session with `to` from a fresh bundle, as assertSessions does; its next message is a pkmsg
const rekey = async (from, to) => {
	const { node, preKeyId } = await fetchBundle(to)
	await parseAndInjectE2ESessions(node, from.repo)
	return preKeyId
}

// uploadPreKeys as the socket does it: generate + store inside a transaction, creds.update, saveCreds
const uploadPreKeys = async (party, count) => {
	let update
	await party.keys.transaction(async () => {
		;({ update } = await getNextPreKeys({ creds: party.creds, keys: party.keys }, count))
		Object.assign(party.creds, update)
	}, party.creds.me?.id || 'upload-pre-keys')
	await party.saveCreds()
	return update
}

// rotateSignedPreKey as the 7.x socket does it (new id, creds.update)
const rotateSignedPreKey = async party => {
	const skey = await signedKeyPair(party.creds.signedIdentityKey, (party.creds.signedPreKey.keyId || 0) + 1)
	await party.credsUpdate({ signedPreKey: skey })
	return skey.keyId
}

// `from`'s libsignal SessionRecord for `to`, read through `from`'s store (null if none)
const sessionRecord = async (from, to) => {
	const addr = from.repo.jidToSignalProtocolAddress(to.jid)
	const { [addr]: rec } = await from.keys.get('session', [addr])
	return rec ? libsignal.SessionRecord.deserialize(rec) : null
}

// true if `from`'s open session with `to` still waits for its first reply (its messages are pkmsgs that
// name `to`'s signed pre-key, so `to` must not rotate it yet)
const hasPendingPreKey = async (from, to) => {
	const open = (await sessionRecord(from, to))?.getOpenSession()
	return !open || !!open.pendingPreKey
}

// ---------------------------------------------------------------- messages
const describe = e => (e instanceof Error ? e.message || String(e) : String(e))

// sender: encryption inside one keys.transaction, as relayMessage does
const encrypt1to1 = (from, to, msg) =>
	from.keys.transaction(() => from.repo.encryptMessage({ jid: to.jid, data: P.waMessage(msg) }), to.jid)

// receiver: decrypt, then process a sender-key distribution message carried inside, as decode-wa-message does
const receive1to1 = async (to, from, enc) => {
	let plain
	try {
		plain = await to.repo.decryptMessage({ jid: from.jid, type: enc.type, ciphertext: enc.ciphertext })
	} catch (e) {
		throw new StepError(`${to.name} could not decrypt a ${enc.type} from ${from.name} (${from.jid}): ${describe(e)}`)
	}
	const msg = P.decodeWA(plain)
	if (msg.senderKeyDistributionMessage) {
		await to.repo.processSenderKeyDistributionMessage({ item: msg.senderKeyDistributionMessage, authorJid: from.jid })
	}
	return msg
}

// libsignal (node) tries a record's sessions newest first and keeps the ratchet step a failed attempt made: if
// `to` re-keyed (its open session is a pending pkmsg session that `from` never received) and `from` then sends
// on the previous session, `to` decrypts it with the closed session but stores its pending session broken, and
// every later message of `to` fails with "Bad MAC". Real clients hit this when messages cross a re-key. So before
// `from` sends 1:1, an undelivered pkmsg of `to` is delivered first (as the server would have delivered it).
// Happens only after a run was killed between a re-key and its reply (or after `exchange --rekey` without a reply).
const catchUps = []
const deliverPendingPkmsg = async (from, to) => {
	const pending = (await sessionRecord(to, from))?.getOpenSession()
	if (!pending?.pendingPreKey) return
	const mine = await sessionRecord(from, to)
	if (mine?.getSession(pending.indexInfo.baseKey)) return // already delivered: the reply will clear it
	const r = await sendText(to, from, `catch-up ${to.name}->${from.name} ${randomBytes(4).toString('hex')}`, { catchUp: false })
	catchUps.push(`${to.name}->${from.name} ${r.type}`)
	process.stderr.write(`note: delivered ${to.name}'s pending ${r.type} to ${from.name} before ${from.name} sends (see deliverPendingPkmsg)\n`)
}

const sendText = async (from, to, text, { catchUp = true } = {}) => {
	if (catchUp) await deliverPendingPkmsg(from, to)
	let enc
	try {
		enc = await encrypt1to1(from, to, { conversation: text })
	} catch (e) {
		throw new StepError(`${from.name} could not encrypt to ${to.name} (${to.jid}): ${describe(e)}`)
	}
	const msg = await receive1to1(to, from, enc)
	if (msg.conversation !== text) throw new StepError(`${to.name} decrypted ${JSON.stringify(msg.conversation)}, expected ${JSON.stringify(text)}`)
	return { text: msg.conversation, type: enc.type }
}

// group message as relayMessage sends it: group ciphertext (skmsg) with the sender key, the sender-key
// distribution message in a 1:1 message to devices not yet in sender-key-memory, and sender-key-memory stored,
// all inside one transaction; then the receiver decrypts
const sendGroup = async (from, to, text) => {
	await deliverPendingPkmsg(from, to) // the sender key may go out in a 1:1 message
	let ciphertext
	let skdm = null
	try {
		await from.keys.transaction(async () => {
			const { [GROUP]: stored } = await from.keys.get('sender-key-memory', [GROUP])
			const memory = stored || {}
			const res = await from.repo.encryptGroupMessage({ group: GROUP, meId: from.jid, data: P.waMessage({ conversation: text }) })
			ciphertext = res.ciphertext
			if (!memory[to.jid]) {
				skdm = await from.repo.encryptMessage({
					jid: to.jid,
					data: P.waMessage({
						senderKeyDistributionMessage: { groupId: GROUP, axolotlSenderKeyDistributionMessage: res.senderKeyDistributionMessage }
					})
				})
				memory[to.jid] = true
			}
			await from.keys.set({ 'sender-key-memory': { [GROUP]: memory } })
		}, GROUP)
	} catch (e) {
		throw new StepError(`${from.name} could not encrypt to group ${GROUP}: ${describe(e)}`)
	}
	if (skdm) await receive1to1(to, from, skdm)
	let plain
	try {
		plain = await to.repo.decryptGroupMessage({ group: GROUP, authorJid: from.jid, msg: ciphertext })
	} catch (e) {
		throw new StepError(
			`${to.name} could not decrypt a group message from ${from.name} (${from.jid})` +
				`${skdm ? '' : " (no sender key sent: the sender's sender-key-memory says the receiver has it)"}: ${describe(e)}`
		)
	}
	const msg = P.decodeWA(plain)
	if (msg.conversation !== text) throw new StepError(`${to.name} decrypted ${JSON.stringify(msg.conversation)}, expected ${JSON.stringify(text)}`)
	return { text: msg.conversation, type: 'skmsg', skdm: !!skdm }
}

const crossVersionHint = pair =>
	!IS7 && pair.addressing === 'lid'
		? ` [hint: this pair was created by Baileys ${pair.created_with.version} with LID addressing; Baileys 6 has no LID` +
		  ' signal addresses (it looks for session-<lid>.<device>, 7.x stored session-<lid>_1.<device>); create the pair with --pn-only]'
		: ''

const openPair = async (dir, pair) => {
	const parties = {}
	for (const name of ['A', 'B']) parties[name] = await openParty(name, join(dir, pair.parties[name].folder), pair.parties[name])
	return parties
}

const countFiles = async folder => (await readdir(folder)).length
const typesIn = async folder => [...new Set((await readdir(folder)).map(n => splitFileName(n)?.type).filter(Boolean))].sort()

// ================================================================ create
const create = async () => {
	const dir = resolve(opts.dir)
	const pnOnly = !!opts['pn-only']
	if (pnOnly && !IS7) throw new UsageError('--pn-only only applies to --baileys 7 (6.x always uses PN addressing)')
	const preKeyCount = intOpt('prekeys', 30, 3)
	for (const p of ['A', 'B', 'pair.json']) {
		if (await exists(join(dir, p))) throw new StepError(`${join(dir, p)} already exists; create needs a new or empty DIR`)
	}
	await mkdir(dir, { recursive: true })
	const addressing = IS7 && !pnOnly ? 'lid' : 'pn'
	const info = {}
	for (const [name, d] of Object.entries(PARTIES)) {
		const pn = `${d.pnUser}:${d.device}@s.whatsapp.net`
		const lid = IS7 ? `${d.lidUser}:${d.device}@lid` : null
		info[name] = { folder: name, pn, lid, jid: addressing === 'lid' ? lid : pn }
	}
	const A = await openParty('A', join(dir, 'A'), info.A, { fresh: true })
	const Bp = await openParty('B', join(dir, 'B'), info.B, { fresh: true })
	const both = [A, Bp]
	const peerOf = p => (p === A ? Bp : A)
	const check = (what, ok) => {
		if (!ok) throw new StepError(`create: check failed: ${what}`)
	}

	// 1. fresh creds as useMultiFileAuthState hands them out, saved; pairing; own LID mapping; pre-key upload
	for (const p of both) {
		const d = PARTIES[p.name]
		await p.saveCreds()
		const stanza = P.pairSuccessStanza({ creds: p.creds, jid: p.pn, lid: p.lid ?? undefined, bizName: d.bizName })
		const { creds: update } = configureSuccessfulPairing(stanza, p.creds)
		await p.credsUpdate(update)
		check(`${p.name} me.id after pairing`, p.creds.me.id === p.pn)
		if (IS7) {
			// as the 7.x socket does on connect
			await p.repo.lidMapping.storeLIDPNMappings([{ lid: p.lid, pn: p.pn }])
			await p.keys.set({ 'device-list': { [d.pnUser]: [String(d.device)] } })
		}
		await uploadPreKeys(p, preKeyCount)
	}

	// 2. 7.x: what usync tells each party about the other (LID mapping only with LID addressing)
	if (IS7) {
		for (const p of both) {
			const q = PARTIES[peerOf(p).name]
			if (addressing === 'lid') {
				await p.repo.lidMapping.storeLIDPNMappings([{ lid: peerOf(p).lid, pn: peerOf(p).pn }])
				await p.keys.set({ 'device-list': { [q.pnUser]: ['0', String(q.device)], [q.lidUser]: ['0', String(q.device)] } })
			} else {
				await p.keys.set({ 'device-list': { [q.pnUser]: ['0', String(q.device)] } })
			}
		}
	}

	// 3. 1:1 sessions: A opens with a pkmsg (consumes one of B's pre-keys), B replies; then B re-opens with a
	//    pkmsg (consumes one of A's pre-keys, gives A B's identity key on 7.x), A replies
	const log = []
	const say = async (from, to, text) => {
		const r = await sendText(from, to, text)
		log.push(`${from.name}->${to.name} ${r.type}`)
		return r
	}
	await rekey(A, Bp)
	check('A first message is pkmsg', (await say(A, Bp, 'Olá B, aqui é o A ✓')).type === 'pkmsg')
	check('B reply is msg', (await say(Bp, A, 'oi A 👋')).type === 'msg')
	await rekey(Bp, A)
	check('B first message after re-key is pkmsg', (await say(Bp, A, 'B again, new session')).type === 'pkmsg')
	check('A reply is msg', (await say(A, Bp, 'got it')).type === 'msg')
	check('B follow-up is msg', (await say(Bp, A, 'follow-up')).type === 'msg')

	// 4. group: each sends its sender key (in a 1:1 message) and two group messages
	for (const [from, to] of [[A, Bp], [Bp, A]]) {
		for (let i = 1; i <= 2; i++) {
			const r = await sendGroup(from, to, `group ${from.name} #${i}`)
			check(`${from.name} group message ${i} ${i === 1 ? 'carries' : 'needs no'} sender key`, r.skdm === (i === 1))
			log.push(`${from.name}->${to.name} skmsg${r.skdm ? '+skdm' : ''}`)
		}
	}

	// 5. app-state sync keys from each party's own phone, through processMessage; then LT-hash states
	for (const p of both) {
		const pending = []
		const ev = {
			emit(event, data) {
				if (event === 'creds.update') pending.push(p.credsUpdate(data))
				return true
			}
		}
		const keyIds = APP_KEY_IDS[p.name].map(b => Buffer.from(b))
		const b64 = keyIds.map(k => k.toString('base64'))
		check(`${p.name} app-state key ids hold '/' and '+'`, b64.some(s => s.includes('/')) && b64.some(s => s.includes('+')))
		await processMessage(P.appStateKeyShareMessage({ meUserJid: `${PARTIES[p.name].pnUser}@s.whatsapp.net`, keyIds }), {
			shouldProcessHistoryMsg: false,
			placeholderResendCache: undefined,
			ev,
			creds: p.creds,
			signalRepository: p.repo,
			keyStore: p.keys,
			logger: p.logger,
			options: {},
			getMessage: async () => undefined
		})
		for (const w of pending) await w
		check(`${p.name} myAppStateKeyId`, p.creds.myAppStateKeyId === b64[2])

		const getAppStateSyncKey = async id => (await p.keys.get('app-state-sync-key', [id]))[id]
		const peerChat = `${PARTIES[peerOf(p).name].pnUser}@s.whatsapp.net`
		const lastMsg = { key: { remoteJid: peerChat, fromMe: false, id: `3A${randomBytes(9).toString('hex').toUpperCase()}` }, messageTimestamp: nowSec() }
		const mods = {
			regular_high: [[{ mute: Date.now() + 8 * 3600 * 1000 }, peerChat], [{ mute: null }, GROUP]],
			regular_low: [[{ archive: true, lastMessages: [lastMsg] }, peerChat]]
		}
		for (const [collection, list] of Object.entries(mods)) {
			let st = newLTHashState()
			for (const [mod, jid] of list) {
				;({ state: st } = await encodeSyncdPatch(chatModificationToAppPatch(mod, jid), p.creds.myAppStateKeyId, st, getAppStateSyncKey))
			}
			await p.keys.set({ 'app-state-sync-version': { [collection]: st } })
		}
		await p.keys.set({ 'app-state-sync-version': { critical_block: newLTHashState() } })

		// a creds.update burst after login / history sync
		await p.credsUpdate({
			processedHistoryMessages: [
				{ key: { remoteJid: `${PARTIES[p.name].pnUser}@s.whatsapp.net`, fromMe: true, id: `3EB0${randomBytes(8).toString('hex').toUpperCase()}` }, messageTimestamp: nowSec() }
			],
			accountSyncCounter: 1,
			lastAccountSyncTimestamp: nowSec()
		})
	}

	// 6. 7.x: trusted-contact tokens for the peer, with the __index entry
	if (IS7) {
		for (const p of both) {
			const q = peerOf(p)
			const peerUserJid = addressing === 'lid' ? `${PARTIES[q.name].lidUser}@lid` : `${PARTIES[q.name].pnUser}@s.whatsapp.net`
			const t = String(nowSec())
			const result = {
				tag: 'iq',
				attrs: { type: 'result' },
				content: [{ tag: 'tokens', attrs: {}, content: [{ tag: 'token', attrs: { type: 'trusted_contact', jid: peerUserJid, t }, content: randomBytes(28) }] }]
			}
			const getLIDForPN = p.repo.lidMapping.getLIDForPN.bind(p.repo.lidMapping)
			await tcTokenUtils.storeTcTokensFromIqResult({ result, keys: p.keys, getLIDForPN })
			const { [peerUserJid]: current } = await p.keys.get('tctoken', [peerUserJid])
			check(`${p.name} tctoken for ${peerUserJid}`, !!current)
			const indexWrite = await tcTokenUtils.buildMergedTcTokenIndexWrite(p.keys, [peerUserJid])
			await p.keys.set({ tctoken: { [peerUserJid]: { ...current, senderTimestamp: nowSec() }, ...indexWrite } })
		}
	}

	// 7. check, and write pair.json (public metadata only)
	const result = { ok: true, baileys: BL.version, addressing, dir, pair: join(dir, 'pair.json'), group: GROUP }
	const idsAtCreate = {}
	for (const p of both) {
		const types = await typesIn(p.folder)
		const missing = REQUIRED_TYPES.filter(t => !types.includes(t))
		check(`${p.name} holds every key type (missing: ${missing.join(', ')})`, missing.length === 0)
		idsAtCreate[p.name] = Object.fromEntries(
			Object.entries(p.ids)
				.filter(([, s]) => s.size)
				.sort(([a], [b]) => a.localeCompare(b))
				.map(([t, s]) => [t, [...s].sort()])
		)
		for (const [type, list] of Object.entries(idsAtCreate[p.name])) {
			for (const id of list) {
				const name = baileysFileName(type, id)
				const guess = splitFileName(name)
				if (!guess || guess.type !== type || guess.id !== id) process.stderr.write(`note: file ${name} does not map back to ${type} ${JSON.stringify(id)}\n`)
			}
		}
		const hasSlash = (idsAtCreate[p.name]['app-state-sync-key'] || []).some(id => id.includes('/') && !id.includes('+')) &&
			(idsAtCreate[p.name]['app-state-sync-key'] || []).some(id => id.includes('/') && id.includes('+'))
		check(`${p.name} app-state-sync-key ids with '/' and '+'`, hasSlash)
		check(`${p.name} sender-key ids with '::'`, (idsAtCreate[p.name]['sender-key'] || []).every(id => id.includes('::')))
		result[p.name.toLowerCase()] = { jid: p.creds.me.id, lid: p.creds.me.lid ?? null, address: p.jid, files: await countFiles(p.folder), types }
	}
	const pair = {
		format: 'waauth-session-pair-1',
		created_with: { package: BL.pkgName, version: BL.version, major: BL.major, libsignal: BL.libsignalVersion },
		created_at: new Date().toISOString(),
		addressing,
		group: GROUP,
		parties: Object.fromEntries(both.map(p => [p.name, { ...info[p.name], signal_address: p.repo.jidToSignalProtocolAddress(p.jid) }])),
		ids_at_create: idsAtCreate,
		steps: log
	}
	await writeFile(join(dir, 'pair.json'), JSON.stringify(pair, null, 2) + '\n')
	return result
}

// ================================================================ exchange
const exchange = async () => {
	const dir = resolve(opts.dir)
	const pair = await readPair(dir)
	const fromName = opts.from ?? (opts.to === 'A' ? 'B' : 'A')
	const toName = opts.to ?? (fromName === 'A' ? 'B' : 'A')
	if (!['A', 'B'].includes(fromName) || !['A', 'B'].includes(toName) || fromName === toName) {
		throw new UsageError('--from/--to must be A and B (or B and A)')
	}
	const count = intOpt('count', 1, 1)
	if (opts.rekey && opts.group) throw new UsageError('--rekey applies to 1:1 messages (a group message would leave the new session unused)')
	const parties = await openPair(dir, pair)
	const from = parties[fromName]
	const to = parties[toName]
	const decrypted = []
	const types = []
	let rekeyedWith
	try {
		if (opts.rekey) rekeyedWith = await rekey(from, to)
		for (let i = 1; i <= count; i++) {
			const text = `${fromName}->${toName} ${opts.group ? 'group' : '1:1'} ${i}/${count} ${randomBytes(4).toString('hex')}`
			const r = opts.group ? await sendGroup(from, to, text) : await sendText(from, to, text)
			decrypted.push(r.text)
			types.push(r.skdm ? 'skmsg+skdm' : r.type)
		}
	} catch (e) {
		if (e instanceof StepError) e.message += crossVersionHint(pair)
		e.decrypted = decrypted
		throw e
	}
	const res = { ok: true, decrypted, types, from: fromName, to: toName, group: !!opts.group, created_with: pair.created_with.version, catch_up: catchUps }
	if (opts.rekey) res.rekeyed_with_pre_key = rekeyedWith
	return res
}

// ================================================================ dump
const dump = async () => {
	const folder = resolve(opts.dir)
	const st = await stat(folder).catch(() => null)
	if (!st?.isDirectory()) throw new StepError(`${folder} is not a directory`)
	// exact ids recorded by `create` (pair.json next to the folder), if any: preferred over guesses from names
	const recorded = new Map()
	const pairFile = opts.pair ? resolve(opts.pair) : join(dirname(folder), 'pair.json')
	try {
		const pair = JSON.parse(await readFile(pairFile, 'utf-8'))
		const party = Object.entries(pair.parties || {}).find(([, p]) => p.folder === basename(folder))?.[0]
		for (const [type, list] of Object.entries(pair.ids_at_create?.[party] || {})) {
			for (const id of list) recorded.set(baileysFileName(type, id), { type, id })
		}
	} catch {}

	const names = (await readdir(folder)).sort()
	const { state } = await useMultiFileAuthState(folder)
	const unreadable = {}
	const checkParse = async name => {
		const p = join(folder, name)
		const s = await stat(p)
		if (!s.isFile()) return { ok: false, why: 'not a regular file', size: null }
		const raw = await readFile(p, 'utf-8')
		try {
			JSON.parse(raw)
			return { ok: true, raw }
		} catch (e) {
			return { ok: false, why: e.message, size: Buffer.byteLength(raw), head: raw.slice(0, 40) }
		}
	}
	let creds = null
	if (names.includes('creds.json')) {
		const c = await checkParse('creds.json')
		if (c.ok) creds = toJSONValue(state.creds)
		else unreadable['creds.json'] = { size: c.size, error: c.why, head: c.head }
	}
	const keys = {}
	const files = {}
	const unknown = {}
	for (const name of names) {
		if (name === 'creds.json') continue
		const c = await checkParse(name)
		if (!c.ok) unreadable[name] = { size: c.size, error: c.why, ...(c.head !== undefined ? { head: c.head } : {}) }
		const split = splitFileName(name)
		if (!split) {
			unknown[name] = c.ok ? toJSONValue(JSON.parse(c.raw, BufferJSON.reviver)) : null
			continue
		}
		const { type } = split
		const id = recorded.get(name)?.type === type ? recorded.get(name).id : split.id
		const { [id]: value } = await state.keys.get(type, [id])
		;(keys[type] ||= {})[id] = toJSONValue(value)
		files[name] = { type, id }
	}
	return { ok: true, baileys: BL.version, creds, keys, files, unreadable, unknown_files: unknown, known_types: KNOWN_TYPES }
}

// ================================================================ write-loop
const writeLoop = async () => {
	const dir = resolve(opts.dir)
	const interval = intOpt('interval-ms', 20, 0)
	let stopping = false
	let wake = () => {}
	const stop = () => {
		stopping = true
		wake()
	}
	process.on('SIGTERM', stop)
	process.on('SIGINT', stop)
	const pair = await readPair(dir)
	const { A, B: Bp } = await openPair(dir, pair)
	const stats = { one_to_one: 0, group: 0, rekeys: 0, prekey_uploads: 0, signed_prekey_rotations: 0, memory_resets: 0 }
	let n = 0
	while (!stopping) {
		n++
		const [S, R] = n % 2 ? [A, Bp] : [Bp, A]
		try {
			if (n % 7 === 0) {
				// S re-fetches R's bundle: its next message is a pkmsg that consumes (deletes) one of R's pre-keys
				await rekey(S, R)
				stats.rekeys++
			}
			if (n % 11 === 0) {
				// S forgets who has its sender key (as after a membership change): the next group send re-distributes it
				await S.keys.set({ 'sender-key-memory': { [GROUP]: null } })
				stats.memory_resets++
			}
			const text = `loop ${n} ${S.name}->${R.name} ${randomBytes(4).toString('hex')}`
			if (n % 3 === 0 && n % 7 !== 0) {
				await sendGroup(S, R, text)
				stats.group++
			} else {
				await sendText(S, R, text)
				stats.one_to_one++
			}
			if (n % 7 === 0 && (await preKeyIdsOnDisk(R)).length < 28) {
				// top up, as the socket does when the server reports few pre-keys: new files, creds.json changes
				await uploadPreKeys(R, 5)
				stats.prekey_uploads++
			}
			if (n % 13 === 0 && !(await hasPendingPreKey(S, R))) {
				await rotateSignedPreKey(R)
				stats.signed_prekey_rotations++
			}
		} catch (e) {
			if (e instanceof StepError) e.message = `step ${n}: ${e.message}${crossVersionHint(pair)}`
			e.stats = { steps: n - 1, ...stats }
			throw e
		}
		out({ step: n })
		if (stopping || interval === 0) continue
		await new Promise(res => {
			const t = setTimeout(res, interval)
			wake = () => {
				clearTimeout(t)
				res()
			}
		})
	}
	return { ok: true, steps: n, ...stats, catch_up: catchUps.length }
}

// ================================================================ main
const RUN = { create, exchange, dump, 'write-loop': writeLoop }
try {
	const res = await RUN[COMMAND]()
	await finish(res, 0)
} catch (e) {
	const err = { ok: false, error: describe(e) }
	if (!(e instanceof StepError) && !(e instanceof UsageError) && e?.stack) process.stderr.write(`${e.stack}\n`)
	if (e?.decrypted) err.decrypted = e.decrypted
	if (e?.stats) err.stats = e.stats
	await finish(err, e instanceof UsageError ? 2 : 1)
}
