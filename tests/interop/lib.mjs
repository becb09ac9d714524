// Shared helpers for the interop scripts that drive real Baileys (session_pair.mjs).
//
// Baileys is loaded from ./baileys7/node_modules or ./baileys6/node_modules (run `npm ci` there first). Nothing
// here writes session files itself: every file in a session folder is written by Baileys' useMultiFileAuthState.

import { randomBytes } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

export const HERE = dirname(fileURLToPath(import.meta.url))

// Baileys' DEFAULT_CONNECTION_CONFIG values for addTransactionCapability
export const TX_OPTS = { maxCommitRetries: 10, delayBetweenTriesMs: 3000 }

// ---------------------------------------------------------------- loading the pinned Baileys
export class UsageError extends Error {}

export const loadBaileys = async major => {
	if (major !== '6' && major !== '7') throw new UsageError('--baileys must be 6 or 7')
	const IS7 = major === '7'
	const project = join(HERE, `baileys${major}`)
	const pkgName = IS7 ? '@whiskeysockets/baileys' : 'baileys'
	let entry
	try {
		entry = createRequire(join(project, 'package.json')).resolve(pkgName)
	} catch {
		throw new UsageError(`cannot find ${pkgName} under ${project}/node_modules; run: (cd ${project} && npm ci)`)
	}
	const root = resolve(dirname(entry), '..')
	const importAbs = p => import(pathToFileURL(p).href)
	const B = await importAbs(entry)
	const baileysRequire = createRequire(join(root, 'package.json'))
	const libsignal = await importAbs(baileysRequire.resolve('libsignal'))
	const version = JSON.parse(await readFile(join(root, 'package.json'), 'utf-8')).version
	const libsignalVersion = JSON.parse(
		await readFile(join(dirname(baileysRequire.resolve('libsignal')), 'package.json'), 'utf-8')
	).version
	// not re-exported from the package root; imported from the modules Baileys' socket itself uses
	const { makeLibSignalRepository } = await importAbs(join(root, 'lib', 'Signal', 'libsignal.js'))
	const { default: processMessage } = await importAbs(join(root, 'lib', 'Utils', 'process-message.js'))
	const tcTokenUtils = IS7 ? await importAbs(join(root, 'lib', 'Utils', 'tc-token-utils.js')) : null
	if (B.DEFAULT_CONNECTION_CONFIG.makeSignalRepository !== makeLibSignalRepository) {
		throw new Error('lib/Signal/libsignal.js is not the repository Baileys uses by default')
	}
	return { B, IS7, major, pkgName, version, libsignalVersion, libsignal, makeLibSignalRepository, processMessage, tcTokenUtils }
}

// ---------------------------------------------------------------- logging (stderr only; stdout is for JSON)
// Baileys' warnings/errors go to stderr, each distinct message once (7.x warns on every PN->LID lookup that
// has no mapping, since no usync is wired in); counts are available for a summary.
export const makeLogSink = (BufferJSON, { verbose = false } = {}) => {
	const seen = new Map()
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
	const emit = (who, level, a) => {
		const msg = fmt(a)
		const key = `${who}\u0000${level}\u0000${msg}`
		const n = (seen.get(key) ?? 0) + 1
		seen.set(key, n)
		if (n === 1 || verbose) process.stderr.write(`[${who}] ${level}: ${msg}\n`)
	}
	const makeLogger = who => {
		const logger = {
			level: verbose ? 'debug' : 'warn',
			child: () => logger,
			trace() {},
			debug: (...a) => verbose && emit(who, 'debug', a),
			info: (...a) => verbose && emit(who, 'info', a),
			warn: (...a) => emit(who, 'warn', a),
			error: (...a) => emit(who, 'error', a),
			fatal: (...a) => emit(who, 'fatal', a)
		}
		return logger
	}
	const summary = () => [...seen].map(([k, count]) => {
		const [who, level, msg] = k.split('\u0000')
		return { who, level, msg, count }
	})
	return { makeLogger, summary }
}

// ---------------------------------------------------------------- protocol helpers
export const nowSec = () => Math.floor(Date.now() / 1000)

export const makeProtocol = ({ B }) => {
	const {
		Curve,
		KEY_BUNDLE_TYPE,
		encodeBigEndian,
		encodeWAMessage,
		hmacSign,
		proto,
		unpadRandomMax16,
		xmppPreKey,
		xmppSignedPreKey
	} = B

	// what the server answers to an `encrypt`/`key` query for one device: its uploaded bundle
	const bundleNode = ({ jid, creds, preKeyId, preKey }) => {
		const content = [
			{ tag: 'registration', attrs: {}, content: encodeBigEndian(creds.registrationId) },
			{ tag: 'type', attrs: {}, content: KEY_BUNDLE_TYPE },
			{ tag: 'identity', attrs: {}, content: creds.signedIdentityKey.public },
			xmppSignedPreKey(creds.signedPreKey)
		]
		if (preKey) content.push(xmppPreKey(preKey, preKeyId))
		return {
			tag: 'iq',
			attrs: { type: 'result' },
			content: [{ tag: 'list', attrs: {}, content: [{ tag: 'user', attrs: { jid }, content }] }]
		}
	}

	// a pair-success stanza signed the way the phone/server would sign it, for configureSuccessfulPairing
	const pairSuccessStanza = ({ creds, jid, lid, bizName, keyIndex = 1 }) => {
		const accountKey = Curve.generateKeyPair()
		const deviceDetails = proto.ADVDeviceIdentity.encode({
			rawId: 1000000000 + Math.floor(Math.random() * 1e8),
			timestamp: nowSec(),
			keyIndex
		}).finish()
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
		const deviceAttrs = { jid }
		if (lid) deviceAttrs.lid = lid
		return {
			tag: 'iq',
			attrs: { id: `pair-${randomBytes(4).toString('hex')}`, from: 's.whatsapp.net', type: 'set' },
			content: [
				{
					tag: 'pair-success',
					attrs: {},
					content: [
						{ tag: 'device-identity', attrs: { 'key-index': String(keyIndex) }, content: identityHmac },
						{ tag: 'platform', attrs: { name: 'smba' } },
						{ tag: 'device', attrs: deviceAttrs },
						{ tag: 'biz', attrs: { name: bizName } }
					]
				}
			]
		}
	}

	// APP_STATE_SYNC_KEY_SHARE from our own phone, decoded from bytes as it is when it arrives
	const appStateKeyShareMessage = ({ meUserJid, keyIds }) => {
		const ts = Date.now()
		const wire = proto.Message.encode(
			proto.Message.fromObject({
				protocolMessage: {
					type: proto.Message.ProtocolMessage.Type.APP_STATE_SYNC_KEY_SHARE,
					appStateSyncKeyShare: {
						keys: keyIds.map((keyId, i) => ({
							keyId: { keyId },
							keyData: {
								keyData: randomBytes(32),
								fingerprint: { rawId: 1234567890 + i, currentIndex: i, deviceIndexes: [0, 1] },
								timestamp: ts - (keyIds.length - i) * 1000
							}
						}))
					}
				}
			})
		).finish()
		return proto.WebMessageInfo.fromObject({
			key: { remoteJid: meUserJid, fromMe: true, id: `3EB0${randomBytes(8).toString('hex').toUpperCase()}` },
			messageTimestamp: nowSec(),
			message: proto.Message.decode(wire)
		})
	}

	const waMessage = obj => encodeWAMessage(proto.Message.fromObject(obj))
	const decodeWA = buf => proto.Message.decode(unpadRandomMax16(Buffer.from(buf)))

	return { bundleNode, pairSuccessStanza, appStateKeyShareMessage, waMessage, decodeWA }
}

// ---------------------------------------------------------------- file names -> (type, id)
// Key types, longest prefix first when a file name is split (sender-key-memory before sender-key).
export const KNOWN_TYPES = [
	'pre-key',
	'session',
	'sender-key',
	'sender-key-memory',
	'app-state-sync-key',
	'app-state-sync-version',
	'lid-mapping',
	'device-list',
	'tctoken',
	'identity-key'
].sort((a, b) => b.length - a.length || a.localeCompare(b))

// the rule Baileys' useMultiFileAuthState applies to `${type}-${id}.json` (used only to check a guess)
export const baileysFileName = (type, id) => `${type}-${id}.json`.replace(/\//g, '__').replace(/:/g, '-')

// Best guess of the exact id from a file name; the rule is not reversible in general, so the guess is only
// used when Baileys' own rule maps it back to the same file name. Otherwise the file-name remainder is used
// (reading with it opens the same file, since it holds no '/' or ':').
export const splitFileName = name => {
	if (!name.endsWith('.json') || name === 'creds.json') return null
	const type = KNOWN_TYPES.find(t => name.startsWith(`${t}-`))
	if (!type) return null
	const raw = name.slice(type.length + 1, -'.json'.length)
	let guess = raw
	if (type === 'app-state-sync-key') guess = raw.replace(/__/g, '/') // ids are base64: no '_' of their own
	if (type === 'sender-key') {
		const parts = raw.split('--') // group::user::device
		if (parts.length === 3) guess = parts.join('::')
	}
	const id = baileysFileName(type, guess) === name ? guess : raw
	return { type, id, raw }
}
