#!/usr/bin/env node
// Generates a "golden" Baileys multi-file auth-state folder for waauth's tests.
//
//   node make_golden.mjs --baileys 7 [--out DIR]
//   node make_golden.mjs --baileys 6 [--out DIR]
//
// Baileys is loaded from ./baileys7/node_modules or ./baileys6/node_modules (run `npm ci` there first).
// Everything on disk under DIR/session/ is written by Baileys' own useMultiFileAuthState; this script only
// drives Baileys (pairing, pre-key upload, libsignal sessions, group sender keys, app-state keys...) the way a
// socket would, through the same store stack a socket uses:
//   addTransactionCapability(makeCacheableSignalKeyStore(<recorder>(useMultiFileAuthState(dir).keys)))
// The recorder forwards every keys.set to Baileys' file store one (type, id) at a time and diffs the folder
// listing around each write, so DIR/manifest.json says which file Baileys produced for each (type, id) without
// this script ever computing a file name itself.
//
// Output is not deterministic (keys are random); it is generated once and committed.

import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const HERE = dirname(fileURLToPath(import.meta.url))

// ---------------------------------------------------------------- arguments
const args = process.argv.slice(2)
const opt = name => {
	const i = args.indexOf(`--${name}`)
	return i >= 0 ? args[i + 1] : undefined
}
const MAJOR = opt('baileys')
if (MAJOR !== '6' && MAJOR !== '7') {
	console.error('usage: node make_golden.mjs --baileys 6|7 [--out DIR]')
	process.exit(2)
}
const OUT = resolve(opt('out') ?? join(HERE, '..', 'data', 'golden', `baileys${MAJOR}`))
const SESSION_DIR = join(OUT, 'session')
const IS7 = MAJOR === '7'

// ---------------------------------------------------------------- load Baileys from the pinned sub-project
const PROJECT = join(HERE, `baileys${MAJOR}`)
const PKG_NAME = IS7 ? '@whiskeysockets/baileys' : 'baileys'
const projectRequire = createRequire(join(PROJECT, 'package.json'))
let entry
try {
	entry = projectRequire.resolve(PKG_NAME)
} catch {
	console.error(`cannot find ${PKG_NAME} under ${PROJECT}/node_modules; run: (cd ${PROJECT} && npm ci)`)
	process.exit(2)
}
const BAILEYS_ROOT = resolve(dirname(entry), '..')
const baileysRequire = createRequire(join(BAILEYS_ROOT, 'package.json'))
const LIBSIGNAL_PKG = join(dirname(baileysRequire.resolve('libsignal')), 'package.json')
const importAbs = p => import(pathToFileURL(p).href)

const B = await importAbs(entry)
const baileysVersion = JSON.parse(await readFile(join(BAILEYS_ROOT, 'package.json'), 'utf-8')).version
const libsignalVersion = JSON.parse(await readFile(LIBSIGNAL_PKG, 'utf-8')).version
// not re-exported from the package root, so imported from the module Baileys' socket itself uses
const { makeLibSignalRepository } = await importAbs(join(BAILEYS_ROOT, 'lib', 'Signal', 'libsignal.js'))
const { default: processMessage } = await importAbs(join(BAILEYS_ROOT, 'lib', 'Utils', 'process-message.js'))
const tcTokenUtils = IS7 ? await importAbs(join(BAILEYS_ROOT, 'lib', 'Utils', 'tc-token-utils.js')) : null

if (B.DEFAULT_CONNECTION_CONFIG.makeSignalRepository !== makeLibSignalRepository) {
	throw new Error('lib/Signal/libsignal.js is not the repository Baileys uses by default')
}

const {
	BufferJSON,
	Curve,
	KEY_BUNDLE_TYPE,
	addTransactionCapability,
	chatModificationToAppPatch,
	configureSuccessfulPairing,
	encodeBigEndian,
	encodeSyncdPatch,
	encodeWAMessage,
	getNextPreKeys,
	hmacSign,
	initAuthCreds,
	makeCacheableSignalKeyStore,
	newLTHashState,
	parseAndInjectE2ESessions,
	proto,
	useMultiFileAuthState,
	xmppPreKey,
	xmppSignedPreKey
} = B

// ---------------------------------------------------------------- small helpers
const sha256 = buf => createHash('sha256').update(buf).digest('hex')
const nowSec = () => Math.floor(Date.now() / 1000)
const TX_OPTS = { maxCommitRetries: 10, delayBetweenTriesMs: 3000 } // Baileys' DEFAULT_CONNECTION_CONFIG values

const logged = []
const fmt = a =>
	a
		.map(x => {
			if (typeof x === 'string') return x
			try {
				return JSON.stringify(x, BufferJSON.replacer)
			} catch {
				return String(x)
			}
		})
		.join(' ')
// Baileys' own warnings/errors, counted (7.x warns on every LID lookup since no usync is wired in)
const log = (who, level, a) => {
	const msg = fmt(a)
	const hit = logged.find(l => l.who === who && l.level === level && l.msg === msg)
	if (hit) hit.count++
	else logged.push({ who, level, msg, count: 1 })
}
const makeLogger = who => {
	const logger = {
		level: 'warn',
		child: () => logger,
		trace() {},
		debug() {},
		info() {},
		warn: (...a) => log(who, 'warn', a),
		error: (...a) => log(who, 'error', a),
		fatal: (...a) => log(who, 'fatal', a)
	}
	return logger
}

let lockTail = Promise.resolve()
const withLock = fn => {
	const run = lockTail.then(fn, fn)
	lockTail = run.catch(() => {})
	return run
}

// ---------------------------------------------------------------- folder snapshots
const snapshot = async () => {
	const out = new Map()
	for (const name of await readdir(SESSION_DIR)) {
		const p = join(SESSION_DIR, name)
		const st = await stat(p, { bigint: true })
		const buf = await readFile(p)
		out.set(name, { sha: sha256(buf), size: buf.length, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs })
	}
	return out
}
const diffSnapshots = (before, after) => {
	const created = []
	const modified = []
	const deleted = []
	for (const [name, a] of after) {
		const b = before.get(name)
		if (!b) created.push(name)
		else if (b.sha !== a.sha || b.mtimeNs !== a.mtimeNs || b.ctimeNs !== a.ctimeNs) modified.push(name)
	}
	for (const name of before.keys()) if (!after.has(name)) deleted.push(name)
	return { created, modified, deleted, after }
}

// ---------------------------------------------------------------- the recorder around Baileys' file store
let step = 'init'
const events = [] // one per (type, id) written or deleted, in order
const calls = [] // one per keys.set call that reached the file store (the unit Baileys asks to be stored)
let seq = 0

const describeFalsy = v => (v === undefined ? 'undefined' : JSON.stringify(v))

const record = async (base, fn) => {
	const before = await snapshot()
	await fn()
	const d = diffSnapshots(before, await snapshot())
	const changed = [...d.created, ...d.modified, ...d.deleted]
	if (changed.length > 1) throw new Error(`one write changed several files: ${changed.join(', ')}`)
	const file = changed[0] ?? null
	const effect = d.created.length ? 'created' : d.modified.length ? 'modified' : d.deleted.length ? 'deleted' : 'none'
	const ev = { seq: ++seq, step, ...base, effect, file }
	if (file && effect !== 'deleted') {
		const info = d.after.get(file)
		ev.size = info.size
		ev.sha256 = info.sha
	}
	events.push(ev)
	return ev
}

const makeRecordingStore = inner => ({
	get: (type, ids) => inner.get(type, ids),
	set: data =>
		withLock(async () => {
			const entries = []
			for (const type in data) {
				for (const id in data[type]) entries.push([type, id, data[type][id]])
			}
			const call = { call: calls.length + 1, step, entries: [] }
			calls.push(call)
			for (const [type, id, value] of entries) {
				const base = { call: call.call, kind: 'key', type, id, op: value ? 'set' : 'delete' }
				if (!value) base.given = describeFalsy(value)
				const ev = await record(base, () => inner.set({ [type]: { [id]: value } }))
				call.entries.push({ seq: ev.seq, type, id, op: ev.op, file: ev.file, effect: ev.effect })
			}
		})
})

// ---------------------------------------------------------------- in-memory store for the simulated peers
const makeMemoryStore = () => {
	const data = {}
	return {
		async get(type, ids) {
			const out = {}
			for (const id of ids) out[id] = data[type]?.[id] ?? null
			return out
		},
		async set(d) {
			for (const type in d) {
				data[type] = data[type] || {}
				for (const id in d[type]) {
					if (d[type][id]) data[type][id] = d[type][id]
					else delete data[type][id]
				}
			}
		}
	}
}

const makePeer = async (name, jid) => {
	const logger = makeLogger(name)
	const creds = initAuthCreds()
	creds.me = { id: jid }
	const keys = addTransactionCapability(makeCacheableSignalKeyStore(makeMemoryStore(), logger), logger, TX_OPTS)
	const repo = makeLibSignalRepository({ creds, keys }, logger)
	const { update, preKeys } = await getNextPreKeys({ creds, keys }, 3)
	Object.assign(creds, update)
	return { name, jid, creds, keys, repo, preKeys }
}

// what the server answers to an `encrypt`/`key` query: the party's uploaded bundle
const bundleNode = (party, preKeyId) => {
	const content = [
		{ tag: 'registration', attrs: {}, content: encodeBigEndian(party.creds.registrationId) },
		{ tag: 'type', attrs: {}, content: KEY_BUNDLE_TYPE },
		{ tag: 'identity', attrs: {}, content: party.creds.signedIdentityKey.public },
		xmppSignedPreKey(party.creds.signedPreKey)
	]
	if (preKeyId !== undefined) content.push(xmppPreKey(party.preKeys[preKeyId], preKeyId))
	return {
		tag: 'iq',
		attrs: { type: 'result' },
		content: [{ tag: 'list', attrs: {}, content: [{ tag: 'user', attrs: { jid: party.jid }, content }] }]
	}
}

const waMessage = obj => encodeWAMessage(proto.Message.fromObject(obj))
const decodeWAText = buf => {
	// Baileys pads with writeRandomPadMax16; strip it the way decode-wa-message does
	const b = Buffer.from(buf)
	return proto.Message.decode(b.subarray(0, b.length - b[b.length - 1])).conversation
}

// ================================================================ main
await rm(SESSION_DIR, { recursive: true, force: true })
await rm(join(OUT, 'manifest.json'), { force: true })
await mkdir(OUT, { recursive: true })

const logger = makeLogger('me')
const { state, saveCreds } = await useMultiFileAuthState(SESSION_DIR)
const creds = state.creds
const keys = addTransactionCapability(
	makeCacheableSignalKeyStore(makeRecordingStore(state.keys), logger),
	logger,
	TX_OPTS
)
const repo = makeLibSignalRepository({ creds, keys }, logger)

const credsWrites = []
const saveCredsRecorded = () =>
	withLock(async () => {
		const ev = await record({ kind: 'creds', op: 'set' }, () => saveCreds())
		credsWrites.push(ev.seq)
	})
// what the socket does on 'creds.update' (merge) followed by the app's ev.on('creds.update', saveCreds)
const credsUpdate = async update => {
	Object.assign(creds, update)
	await saveCredsRecorded()
}
const ev = {
	emitted: [],
	emit(name, data) {
		this.emitted.push(name)
		if (name === 'creds.update') pending.push(credsUpdate(data))
		return true
	}
}
const pending = []
const flushEvents = async () => {
	while (pending.length) await pending.shift()
}

const ME = {
	jid: '5511999999999:12@s.whatsapp.net',
	lid: '123456789012345:12@lid',
	pnUser: '5511999999999',
	lidUser: '123456789012345'
}
const GROUP = '120363025246125888@g.us'
const LEGACY_GROUP = '5511999999999-1612345678@g.us'
const checks = []
const check = (what, ok) => {
	checks.push({ what, ok: !!ok })
	if (!ok) throw new Error(`check failed: ${what}`)
}

// ---- 1. fresh creds, as useMultiFileAuthState hands them out, saved once
step = 'initAuthCreds + saveCreds'
await saveCredsRecorded()

// ---- 2. pairing: a pair-success stanza signed like the phone/server would, processed by Baileys
step = 'configureSuccessfulPairing'
{
	const accountKey = Curve.generateKeyPair()
	const deviceDetails = proto.ADVDeviceIdentity.encode({ rawId: 1234567890, timestamp: nowSec(), keyIndex: 3 }).finish()
	const accountSignature = Curve.sign(
		accountKey.private,
		Buffer.concat([Buffer.from([6, 0]), deviceDetails, creds.signedIdentityKey.public])
	)
	const signed = proto.ADVSignedDeviceIdentity.encode({
		details: deviceDetails,
		accountSignatureKey: accountKey.public,
		accountSignature
	}).finish()
	const hmac = hmacSign(signed, Buffer.from(creds.advSecretKey, 'base64'))
	const identityHmac = proto.ADVSignedDeviceIdentityHMAC.encode({ details: signed, hmac }).finish()
	const stanza = {
		tag: 'iq',
		attrs: { id: 'pair-1', from: 's.whatsapp.net', type: 'set' },
		content: [
			{
				tag: 'pair-success',
				attrs: {},
				content: [
					{ tag: 'device-identity', attrs: { 'key-index': '3' }, content: identityHmac },
					{ tag: 'platform', attrs: { name: 'smba' } },
					{ tag: 'device', attrs: { jid: ME.jid, lid: ME.lid } },
					{ tag: 'biz', attrs: { name: 'Test' } }
				]
			}
		]
	}
	const { creds: update } = configureSuccessfulPairing(stanza, creds)
	await credsUpdate(update)
	check('me.id after pairing', creds.me.id === ME.jid && creds.me.name === 'Test')
}

// ---- 3. pre-key upload (Baileys generates + stores them inside a transaction, then creds.update)
step = 'uploadPreKeys: getNextPreKeys(8) in keys.transaction'
let myPreKeys
await keys.transaction(async () => {
	const { update, preKeys } = await getNextPreKeys({ creds, keys }, 8)
	myPreKeys = preKeys
	ev.emit('creds.update', update)
}, 'upload-pre-keys')
await flushEvents()
check('8 pre-keys generated', Object.keys(myPreKeys).length === 8)

const me = { name: 'me', jid: ME.jid, creds, preKeys: myPreKeys }

// ---- 4. peers
const A = await makePeer('A (PN, device 3)', '5511888888888:3@s.whatsapp.net')
const A0 = await makePeer('A0 (PN, device 0)', '5511888888888@s.whatsapp.net')
const L = await makePeer('L (LID, device 2)', '987654321098765:2@lid')
const D = await makePeer('D (PN, device 4, later migrated to LID)', '5511666666666:4@s.whatsapp.net')
const D_LID = '111222333444555:4@lid'

// ---- 5. incoming 1:1 sessions (peer opens with a pkmsg that consumes one of our pre-keys)
const incoming = async (peer, preKeyId, text) => {
	step = `peer ${peer.jid} fetches our bundle (pre-key ${preKeyId})`
	await parseAndInjectE2ESessions(bundleNode(me, preKeyId), peer.repo)
	const enc = await peer.repo.encryptMessage({ jid: ME.jid, data: waMessage({ conversation: text }) })
	check(`${peer.jid} first message is pkmsg`, enc.type === 'pkmsg')
	step = `decryptMessage pkmsg from ${peer.jid}`
	const plain = await repo.decryptMessage({ jid: peer.jid, type: 'pkmsg', ciphertext: enc.ciphertext })
	check(`decrypt pkmsg from ${peer.jid}`, decodeWAText(plain) === text)
	step = `encryptMessage reply to ${peer.jid}`
	const reply = await repo.encryptMessage({ jid: peer.jid, data: waMessage({ conversation: 'ok ✓' }) })
	check(`reply to ${peer.jid} is msg`, reply.type === 'msg')
	const back = await peer.repo.decryptMessage({ jid: ME.jid, type: reply.type, ciphertext: reply.ciphertext })
	check(`${peer.jid} decrypts reply`, decodeWAText(back) === 'ok ✓')
	const again = await peer.repo.encryptMessage({ jid: ME.jid, data: waMessage({ conversation: text + ' (2)' }) })
	step = `decryptMessage msg from ${peer.jid}`
	const plain2 = await repo.decryptMessage({ jid: peer.jid, type: again.type, ciphertext: again.ciphertext })
	check(`decrypt follow-up from ${peer.jid}`, decodeWAText(plain2) === text + ' (2)')
}
await incoming(A, 1, 'Olá, Joãozinho ✓')
await incoming(L, 2, 'oi do LID 👋')
// out of order: A sends two messages, only the second arrives; libsignal keeps the skipped message key
// (the session's chain then has a non-empty `messageKeys` object keyed by counter)
{
	const lost = await A.repo.encryptMessage({ jid: ME.jid, data: waMessage({ conversation: 'lost' }) })
	const late = await A.repo.encryptMessage({ jid: ME.jid, data: waMessage({ conversation: 'late' }) })
	check('A messages are msg', lost.type === 'msg' && late.type === 'msg')
	step = `decryptMessage out-of-order msg from ${A.jid} (skipped key kept)`
	const plain = await repo.decryptMessage({ jid: A.jid, type: late.type, ciphertext: late.ciphertext })
	check('decrypt out-of-order message', decodeWAText(plain) === 'late')
	const { ['5511888888888.3']: rec } = await keys.get('session', ['5511888888888.3'])
	const chains = Object.values(Object.values(rec._sessions)[0]._chains)
	check('session keeps a skipped message key', chains.some(c => Object.keys(c.messageKeys).length > 0))
}

// ---- 6. outgoing 1:1 sessions (we fetch the peer's bundle; A0 has no one-time pre-key left)
const outgoing = async (peer, preKeyId) => {
	step = `parseAndInjectE2ESessions for ${peer.jid}`
	await parseAndInjectE2ESessions(bundleNode(peer, preKeyId), repo)
	step = `encryptMessage to ${peer.jid}`
	const enc = await repo.encryptMessage({ jid: peer.jid, data: waMessage({ conversation: 'hello' }) })
	check(`first message to ${peer.jid} is pkmsg`, enc.type === 'pkmsg')
	const plain = await peer.repo.decryptMessage({ jid: ME.jid, type: 'pkmsg', ciphertext: enc.ciphertext })
	check(`${peer.jid} decrypts our pkmsg`, decodeWAText(plain) === 'hello')
}
await outgoing(A0, undefined)
await outgoing(D, Number(Object.keys(D.preKeys)[0]))

// 6.x has no LID-aware signal addresses; put one real record under the 7.x LID-style id as well
if (!IS7) {
	step = 'copy of a real SessionRecord under the 7.x LID-style id (6.x never makes this id itself)'
	const { ['987654321098765.2']: rec } = await keys.get('session', ['987654321098765.2'])
	check('6.x stored the LID peer under user.device', !!rec)
	await keys.set({ session: { '987654321098765_1.2': rec } })
}

// ---- 7. groups: our own sender key, and sender keys received from A and L
const groupSend = async group => {
	step = `encryptGroupMessage to ${group}`
	const { ciphertext, senderKeyDistributionMessage } = await repo.encryptGroupMessage({
		group,
		meId: ME.jid,
		data: waMessage({ conversation: 'grupo ✓' })
	})
	await A.repo.processSenderKeyDistributionMessage({
		item: { groupId: group, axolotlSenderKeyDistributionMessage: senderKeyDistributionMessage },
		authorJid: ME.jid
	})
	const plain = await A.repo.decryptGroupMessage({ group, authorJid: ME.jid, msg: ciphertext })
	check(`A decrypts our group message in ${group}`, decodeWAText(plain) === 'grupo ✓')
}
const groupReceive = async (peer, group, n) => {
	let skdmDone = false
	for (let i = 0; i < n; i++) {
		const { ciphertext, senderKeyDistributionMessage } = await peer.repo.encryptGroupMessage({
			group,
			meId: peer.jid,
			data: waMessage({ conversation: `msg ${i}` })
		})
		if (!skdmDone) {
			step = `processSenderKeyDistributionMessage from ${peer.jid} in ${group}`
			await repo.processSenderKeyDistributionMessage({
				item: { groupId: group, axolotlSenderKeyDistributionMessage: senderKeyDistributionMessage },
				authorJid: peer.jid
			})
			skdmDone = true
		}
		step = `decryptGroupMessage from ${peer.jid} in ${group}`
		const plain = await repo.decryptGroupMessage({ group, authorJid: peer.jid, msg: ciphertext })
		check(`decrypt group message ${i} from ${peer.jid}`, decodeWAText(plain) === `msg ${i}`)
	}
}
await groupSend(GROUP)
await groupSend(LEGACY_GROUP)
await groupReceive(A, GROUP, 2)
await groupReceive(L, GROUP, 1)

step = 'sender-key-memory (as messages-send stores it after distributing our sender key)'
await keys.set({ 'sender-key-memory': { [GROUP]: { [A.jid]: true, [L.jid]: true, [A0.jid]: true } } })
await keys.set({ 'sender-key-memory': { [LEGACY_GROUP]: { [A.jid]: true } } })

// ---- 8. app-state sync keys arrive from our phone (APP_STATE_SYNC_KEY_SHARE), processed by processMessage
step = 'processMessage APP_STATE_SYNC_KEY_SHARE'
const appKeyIds = [
	Buffer.from([0, 0, 0, 0, 0x6e, 0x4b]), // AAAAAG5L
	Buffer.from([0, 0, 0, 1, 0x3e, 0xff]), // AAAAAT7/  ('/')
	Buffer.from([0, 0, 0, 0, 0xfb, 0xff, 0xfb]) // AAAAAPv/+w==  ('/', '+', '='); last one becomes myAppStateKeyId
]
check('app key id AAAAAPv/+w==', appKeyIds[2].toString('base64') === 'AAAAAPv/+w==')
{
	const ts = Date.now()
	const wire = proto.Message.encode(
		proto.Message.fromObject({
			protocolMessage: {
				type: proto.Message.ProtocolMessage.Type.APP_STATE_SYNC_KEY_SHARE,
				appStateSyncKeyShare: {
					keys: appKeyIds.map((keyId, i) => ({
						keyId: { keyId },
						keyData: {
							keyData: randomBytes(32),
							fingerprint: { rawId: 1234567890 + i, currentIndex: i, deviceIndexes: [0, 12] },
							timestamp: ts - (appKeyIds.length - i) * 1000
						}
					}))
				}
			}
		})
	).finish()
	const message = proto.WebMessageInfo.fromObject({
		key: { remoteJid: '5511999999999@s.whatsapp.net', fromMe: true, id: '3EB0C431D5C2E5A5E2D3F1' },
		messageTimestamp: nowSec(),
		message: proto.Message.decode(wire) // decoded from bytes, as it is when it arrives
	})
	await processMessage(message, {
		shouldProcessHistoryMsg: false,
		placeholderResendCache: undefined,
		ev,
		creds,
		signalRepository: repo,
		keyStore: keys,
		logger,
		options: {},
		getMessage: async () => undefined
	})
	await flushEvents()
	check('myAppStateKeyId set by processMessage', creds.myAppStateKeyId === 'AAAAAPv/+w==')
}

// ---- 9. app-state-sync-version: LT-hash states produced by Baileys' own encodeSyncdPatch
step = 'app-state-sync-version via encodeSyncdPatch'
{
	const getAppStateSyncKey = async id => (await keys.get('app-state-sync-key', [id]))[id]
	const lastMsg = { key: { remoteJid: '5511888888888@s.whatsapp.net', fromMe: false, id: '3A1B2C3D4E5F' }, messageTimestamp: nowSec() }
	const mods = {
		regular_high: [
			[{ mute: Date.now() + 8 * 3600 * 1000 }, '5511888888888@s.whatsapp.net'],
			[{ mute: null }, GROUP]
		],
		regular_low: [
			[{ archive: true, lastMessages: [lastMsg] }, '5511888888888@s.whatsapp.net'],
			[{ markRead: true, lastMessages: [lastMsg] }, '5511888888888@s.whatsapp.net']
		]
	}
	for (const [name, list] of Object.entries(mods)) {
		let st = newLTHashState()
		for (const [mod, jid] of list) {
			const patch = chatModificationToAppPatch(mod, jid)
			check(`patch type ${name}`, patch.type === name)
			;({ state: st } = await encodeSyncdPatch(patch, creds.myAppStateKeyId, st, getAppStateSyncKey))
		}
		await keys.set({ 'app-state-sync-version': { [name]: st } })
	}
	// collections synced but still empty: version 0, zero hash, empty indexValueMap
	for (const name of ['critical_block', 'critical_unblock_low', 'regular']) {
		await keys.set({ 'app-state-sync-version': { [name]: newLTHashState() } })
	}
}

// ---- 10. later creds.update bursts (history sync, account sync, routing info)
step = 'creds.update after login / history sync'
await credsUpdate({
	processedHistoryMessages: [
		{ key: { remoteJid: '5511999999999@s.whatsapp.net', fromMe: true, id: '3EB0A1B2C3D4E5F60718' }, messageTimestamp: nowSec() }
	],
	accountSyncCounter: 1,
	lastAccountSyncTimestamp: nowSec()
})
await credsUpdate({ routingInfo: Buffer.from('0806080d0805', 'hex'), lastPropHash: '3R2Jbc' })

// ---- 11. 7.x only: LID mappings, device lists, identity keys (above), tctokens, PN->LID session migration
if (IS7) {
	step = 'lidMapping.storeLIDPNMappings (own LID, as the socket does on connect)'
	await repo.lidMapping.storeLIDPNMappings([{ lid: ME.lid, pn: ME.jid }])
	step = 'device-list for own user (as the socket does on connect)'
	await keys.set({ 'device-list': { [ME.pnUser]: ['12'] } })
	step = 'device-list from usync (messages-send)'
	await keys.set({ 'device-list': { '5511888888888': ['0', '3'], '987654321098765': ['2'], '5511666666666': ['4'] } })

	step = 'lidMapping.storeLIDPNMappings for D, then migrateSession PN->LID'
	await repo.lidMapping.storeLIDPNMappings([{ lid: D_LID, pn: D.jid }])
	const res = await repo.migrateSession(D.jid, D_LID)
	check('migrated D session to LID', res.migrated === 1)

	step = 'storeTcTokensFromIqResult'
	const getLIDForPN = repo.lidMapping.getLIDForPN.bind(repo.lidMapping)
	const t = String(nowSec())
	const result = {
		tag: 'iq',
		attrs: { type: 'result' },
		content: [
			{
				tag: 'tokens',
				attrs: {},
				content: [
					{ tag: 'token', attrs: { type: 'trusted_contact', jid: '987654321098765@lid', t }, content: randomBytes(28) },
					{ tag: 'token', attrs: { type: 'trusted_contact', jid: '5511888888888@s.whatsapp.net', t }, content: randomBytes(28) }
				]
			}
		]
	}
	await tcTokenUtils.storeTcTokensFromIqResult({ result, keys, getLIDForPN })
	step = 'tctoken senderTimestamp + __index (as messages-send does after issuing)'
	for (const jid of ['987654321098765@lid', '111222333444555@lid']) {
		const { [jid]: currentEntry } = await keys.get('tctoken', [jid])
		const indexWrite = await tcTokenUtils.buildMergedTcTokenIndexWrite(keys, [jid])
		await keys.set({ tctoken: { [jid]: { token: Buffer.alloc(0), ...currentEntry, senderTimestamp: nowSec() }, ...indexWrite } })
	}
	const idx = await tcTokenUtils.readTcTokenIndex(keys)
	check('tctoken __index lists both jids', idx.includes('987654321098765@lid') && idx.includes('111222333444555@lid'))
}

// ---- 12. edge values, under a type Baileys does not know (a store must keep unknown types as they are)
step = 'edge values (unknown type x-waauth-edge)'
const EDGE = 'x-waauth-edge'
await keys.set({
	[EDGE]: {
		'empty-buffer': Buffer.alloc(0),
		'plain-string': 'Joãozinho ✓',
		'boolean-true': true,
		numbers: { int: 42, negative: -7, float: 1.5, third: 0.1 + 0.2, maxSafe: 9007199254740991, big: 1e21, tiny: 5e-324, zero: 0 },
		nested: {
			name: 'Joãozinho ✓',
			emoji: '👍🏽',
			escapes: 'quote " backslash \\ newline \n tab \t nul \u0000 ls \u2028',
			arrays: [[1, 2, [3, [4]]], [], [{ a: [true, false, null] }]],
			buffers: [Buffer.from('hi'), Buffer.alloc(0), new Uint8Array([1, 2, 3])],
			10: 'ten',
			2: 'two',
			z: 'last'
		},
		'numeric-keys-numbers': { 0: 1, 1: 255, 2: 0 },
		'numeric-keys-strings': { 0: 'a', 1: 'b' },
		'empty-object': {},
		'empty-array': [],
		'path/with:colon': 'id holds "/" and ":"',
		'Joãozinho ✓': 'non-ASCII id with a space'
	}
})
// fixFileName is not injective: both ids land in the same file
await keys.set({ [EDGE]: { 'collide:1': 'first (id collide:1)' } })
await keys.set({ [EDGE]: { 'collide-1': 'second (id collide-1)' } })
// any falsy value deletes
await keys.set({ [EDGE]: { 'falsy-zero': 'temporary' } })
await keys.set({ [EDGE]: { 'falsy-zero': 0 } })
await keys.set({ [EDGE]: { 'falsy-empty-string': 'temporary' } })
await keys.set({ [EDGE]: { 'falsy-empty-string': '' } })

// ---- 13. explicit pre-key deletions: one that exists, one that never existed
step = "keys.set({'pre-key': {'5': null}})"
await keys.set({ 'pre-key': { 5: null } })
step = "keys.set({'pre-key': {'99': null}}) (never existed)"
await keys.set({ 'pre-key': { 99: null } })

await flushEvents()
await lockTail

// ================================================================ read everything back with a fresh Baileys store
step = 'readback'
const fresh = await useMultiFileAuthState(SESSION_DIR)
const lastEventFor = new Map()
for (const e of events) if (e.file && e.effect !== 'deleted') lastEventFor.set(e.file, e)
const files = {}
for (const name of (await readdir(SESSION_DIR)).sort()) {
	const raw = await readFile(join(SESSION_DIR, name))
	const e = lastEventFor.get(name)
	if (!e) throw new Error(`file not attributed to any write: ${name}`)
	let value
	if (e.kind === 'creds') value = fresh.state.creds
	else value = (await fresh.state.keys.get(e.type, [e.id]))[e.id]
	const readback = JSON.stringify(value, BufferJSON.replacer)
	files[name] = {
		kind: e.kind,
		...(e.kind === 'key' ? { type: e.type, id: e.id } : {}),
		size: raw.length,
		sha256: sha256(raw),
		last_write_seq: e.seq,
		readback,
		readback_equals_file: readback === raw.toString('utf-8')
	}
}
const present = new Set(Object.keys(files))
const deletedKeys = []
for (const e of events) {
	if (e.kind !== 'key' || e.op !== 'delete') continue
	const { [e.id]: v } = await fresh.state.keys.get(e.type, [e.id])
	deletedKeys.push({
		seq: e.seq,
		type: e.type,
		id: e.id,
		given: e.given,
		file: e.file,
		effect: e.effect,
		file_absent_now: e.file ? !present.has(e.file) : null,
		readback: v === null ? null : JSON.stringify(v, BufferJSON.replacer)
	})
}

// keys.set calls that Baileys' transaction layer dropped before they reached the store
const reachedDeletes = new Set(events.filter(e => e.op === 'delete').map(e => `${e.type}\u0000${e.id}`))
const droppedBeforeStore = []
if (!reachedDeletes.has('pre-key\u00005')) droppedBeforeStore.push({ type: 'pre-key', id: '5' })
if (!reachedDeletes.has('pre-key\u000099')) droppedBeforeStore.push({ type: 'pre-key', id: '99' })

// ================================================================ how this version's BufferJSON treats odd inputs
const describeRevived = v => {
	if (Buffer.isBuffer(v)) return { buffer_hex: v.toString('hex') }
	return { json: JSON.stringify(v, BufferJSON.replacer) }
}
const REVIVER_INPUTS = [
	'{"type":"Buffer","data":"AQID"}',
	'{"type":"Buffer","data":""}',
	'{"type":"Buffer","data":[1,2,3]}',
	'{"type":"Buffer","data":[]}',
	'{"type":"Buffer"}',
	'{"type":"Buffer","value":"AQID"}',
	'{"buffer":true,"data":"AQID"}',
	'{"buffer":true,"value":[1,2,3]}',
	'{"type":"Buffer","data":"AQID","extra":1}',
	'{}',
	'[]',
	'{"0":1,"1":2,"2":3}',
	'{"2":3,"0":1,"1":2}',
	'{"10":10,"2":2}',
	'{"0":"a","1":"b"}',
	'{"0":1,"x":2}',
	'{"0":300,"1":-1,"2":1.5}',
	'{"1abc":7}',
	'{"-1":7}',
	'{"01":1,"1":2}',
	'{"5511888888888:3@s.whatsapp.net":true}',
	'{"5511888888888:3@s.whatsapp.net":1}',
	'{"k":{"0":1,"1":2}}',
	'"AQID"',
	'null'
]
const reviverProbe = REVIVER_INPUTS.map(input => {
	try {
		return { input, ...describeRevived(JSON.parse(input, BufferJSON.reviver)) }
	} catch (e) {
		return { input, error: String(e?.message ?? e) }
	}
})
const REPLACER_INPUTS = [
	['Buffer.from([1,2,3])', () => Buffer.from([1, 2, 3])],
	['Buffer.alloc(0)', () => Buffer.alloc(0)],
	['new Uint8Array([1,2,3])', () => new Uint8Array([1, 2, 3])],
	["{type:'Buffer',data:[1,2,3]}", () => ({ type: 'Buffer', data: [1, 2, 3] })],
	["{type:'Buffer',data:'AQID'} (string is taken as UTF-8 text, not base64)", () => ({ type: 'Buffer', data: 'AQID' })],
	["{type:'Buffer',data:''}", () => ({ type: 'Buffer', data: '' })],
	["{type:'Buffer'}", () => ({ type: 'Buffer' })],
	["{buffer:true,data:'AQID'}", () => ({ buffer: true, data: 'AQID' })],
	['{a:undefined,b:1}', () => ({ a: undefined, b: 1 })],
	['[undefined, 1]', () => [undefined, 1]]
]
const replacerProbe = REPLACER_INPUTS.map(([input, make]) => {
	try {
		return { input, output: JSON.stringify(make(), BufferJSON.replacer) }
	} catch (e) {
		return { input, error: String(e?.message ?? e) }
	}
})

const typesPresent = [...new Set(Object.values(files).filter(f => f.kind === 'key').map(f => f.type))].sort()

const manifest = {
	format: 'waauth-golden-1',
	generator: 'tests/interop/make_golden.mjs',
	command: `node tests/interop/make_golden.mjs --baileys ${MAJOR}`,
	baileys: { package: PKG_NAME, version: baileysVersion },
	libsignal: { version: libsignalVersion },
	node: process.version,
	generated_at: new Date().toISOString(),
	session_dir: 'session',
	store_stack:
		'addTransactionCapability(makeCacheableSignalKeyStore(recorder(useMultiFileAuthState(session).state.keys))) + makeLibSignalRepository',
	recorder:
		'each keys.set reaching the file store is replayed into useMultiFileAuthState one (type, id) at a time; the folder is listed before and after each, and the changed file is recorded',
	parties: {
		me: { jid: ME.jid, ...(IS7 ? { lid: ME.lid } : {}) },
		peers: [A, A0, L, D].map(p => ({
			name: p.name,
			jid: p.jid,
			signal_address: repo.jidToSignalProtocolAddress(p.jid),
			...(IS7 && p === D ? { lid: D_LID, session_migrated_to: repo.jidToSignalProtocolAddress(D_LID) } : {})
		})),
		groups: [GROUP, LEGACY_GROUP]
	},
	key_types_present: typesPresent,
	creds_writes: credsWrites,
	calls,
	events,
	files,
	deleted_keys: deletedKeys,
	deletes_dropped_before_store: droppedBeforeStore,
	checks,
	baileys_log: logged,
	bufferjson_probe: { reviver: reviverProbe, replacer: replacerProbe }
}
await writeFile(join(OUT, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n')

const total = Object.values(files).reduce((n, f) => n + f.size, 0)
console.log(
	`Baileys ${baileysVersion} (libsignal ${libsignalVersion}): ${Object.keys(files).length} files, ${total} bytes in ${SESSION_DIR}`
)
console.log(`key types: ${typesPresent.join(', ')}`)
console.log(`events: ${events.length}, store calls: ${calls.length}, manifest: ${join(OUT, 'manifest.json')}`)
const notEqual = Object.entries(files).filter(([, f]) => !f.readback_equals_file).map(([n]) => n)
if (notEqual.length) console.log(`readback differs from file bytes for: ${notEqual.join(', ')}`)
// libsignal keeps a timer-free queue, but the cache/LRU may keep handles; exit explicitly
process.exit(0)
