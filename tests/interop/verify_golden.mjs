#!/usr/bin/env node
// Checks a golden folder with Baileys itself (read-only on the golden folder):
//
//   node verify_golden.mjs --baileys 7 [--dir ../data/golden/baileys7]
//
// - useMultiFileAuthState reads creds.json and every key back, and each value, re-serialized with
//   BufferJSON.replacer, equals the `readback` recorded in manifest.json;
// - the folder holds exactly the files the manifest lists, with the recorded sha256;
// - deleted keys read back as null;
// - creds are usable (signed pre-key signature verifies) and every session is a libsignal SessionRecord with an
//   open session; on a scratch copy of the folder Baileys' signal repository can encrypt to every peer and to
//   the groups with the stored records.
// With --dir pointing at the other version's folder it reports (without failing on) readback differences.

import { createHash } from 'node:crypto'
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'

const HERE = dirname(fileURLToPath(import.meta.url))
const args = process.argv.slice(2)
const opt = name => {
	const i = args.indexOf(`--${name}`)
	return i >= 0 ? args[i + 1] : undefined
}
const MAJOR = opt('baileys')
if (MAJOR !== '6' && MAJOR !== '7') {
	console.error('usage: node verify_golden.mjs --baileys 6|7 [--dir DIR]')
	process.exit(2)
}
const DIR = resolve(opt('dir') ?? join(HERE, '..', 'data', 'golden', `baileys${MAJOR}`))
const PKG_NAME = MAJOR === '7' ? '@whiskeysockets/baileys' : 'baileys'
const entry = createRequire(join(HERE, `baileys${MAJOR}`, 'package.json')).resolve(PKG_NAME)
const BAILEYS_ROOT = resolve(dirname(entry), '..')
const importAbs = p => import(pathToFileURL(p).href)
const B = await importAbs(entry)
const { makeLibSignalRepository } = await importAbs(join(BAILEYS_ROOT, 'lib', 'Signal', 'libsignal.js'))
const libsignal = await importAbs(createRequire(join(BAILEYS_ROOT, 'package.json')).resolve('libsignal'))
const { BufferJSON, Curve, generateSignalPubKey, useMultiFileAuthState, addTransactionCapability, proto } = B
const version = JSON.parse(await readFile(join(BAILEYS_ROOT, 'package.json'), 'utf-8')).version

const manifest = JSON.parse(await readFile(join(DIR, 'manifest.json'), 'utf-8'))
const sameVersion = manifest.baileys.version === version
const SESSION = join(DIR, manifest.session_dir)
let failures = 0
let passes = 0
const ok = (what, cond, soft = false) => {
	if (cond) passes++
	else {
		console.log(`${soft ? 'DIFF' : 'FAIL'}: ${what}`)
		if (!soft) failures++
	}
}
const sha256 = buf => createHash('sha256').update(buf).digest('hex')

console.log(`Baileys ${version} reading ${SESSION} (written by ${manifest.baileys.package} ${manifest.baileys.version})`)

// ---- folder listing and bytes
const names = (await readdir(SESSION)).sort()
ok('folder lists exactly the manifest files', JSON.stringify(names) === JSON.stringify(Object.keys(manifest.files).sort()))
for (const name of names) {
	const f = manifest.files[name]
	if (f) ok(`sha256 of ${name}`, sha256(await readFile(join(SESSION, name))) === f.sha256)
}

// ---- read back through useMultiFileAuthState
const { state } = await useMultiFileAuthState(SESSION)
const { creds } = state
ok('creds have noiseKey/signedIdentityKey/signedPreKey/registrationId', !!(creds.noiseKey && creds.signedIdentityKey && creds.signedPreKey && typeof creds.registrationId === 'number'))
ok('creds keys are Buffers', Buffer.isBuffer(creds.noiseKey.private) && creds.signedIdentityKey.public.length === 32)
ok('signed pre-key signature verifies', Curve.verify(creds.signedIdentityKey.public, generateSignalPubKey(creds.signedPreKey.keyPair.public), creds.signedPreKey.signature))
ok(`creds.me.id = ${creds.me?.id}`, creds.me?.id === manifest.parties.me.jid)
ok('creds readback', JSON.stringify(creds, BufferJSON.replacer) === manifest.files['creds.json'].readback, !sameVersion)

const counts = {}
for (const [name, f] of Object.entries(manifest.files)) {
	if (f.kind !== 'key') continue
	const { [f.id]: value } = await state.keys.get(f.type, [f.id])
	counts[f.type] = (counts[f.type] || 0) + 1
	ok(`${f.type} ${JSON.stringify(f.id)} is not null`, value !== null && value !== undefined)
	ok(`readback of ${name}`, JSON.stringify(value, BufferJSON.replacer) === f.readback, !sameVersion)
	if (f.type === 'session') {
		const rec = libsignal.SessionRecord.deserialize(value)
		ok(`${name} is a libsignal SessionRecord with an open session`, rec.haveOpenSession())
	}
	if (f.type === 'pre-key') ok(`${name} holds a 32+32 byte key pair`, value.private.length === 32 && value.public.length === 32)
	if (f.type === 'app-state-sync-key') {
		ok(`${name} revived as AppStateSyncKeyData`, value instanceof proto.Message.AppStateSyncKeyData && value.keyData.length === 32)
	}
	if (f.type === 'sender-key') ok(`${name} holds a JSON sender-key record`, Array.isArray(JSON.parse(Buffer.from(value).toString('utf-8'))))
}
for (const d of manifest.deleted_keys) {
	const { [d.id]: value } = await state.keys.get(d.type, [d.id])
	ok(`deleted ${d.type} ${JSON.stringify(d.id)} reads as null`, value === null)
}
console.log('keys read back per type:', JSON.stringify(counts))

// ---- use the records with Baileys' signal repository, on a scratch copy
const scratch = await mkdtemp(join(tmpdir(), 'waauth-golden-'))
try {
	await cp(SESSION, join(scratch, 'session'), { recursive: true })
	const copy = await useMultiFileAuthState(join(scratch, 'session'))
	const logger = { level: 'silent', child() { return this }, trace() {}, debug() {}, info() {}, warn() {}, error() {}, fatal() {} }
	const keys = addTransactionCapability(copy.state.keys, logger, { maxCommitRetries: 1, delayBetweenTriesMs: 0 })
	const repo = makeLibSignalRepository({ creds: copy.state.creds, keys }, logger)
	const data = B.encodeWAMessage(proto.Message.fromObject({ conversation: 'verify' }))
	for (const peer of manifest.parties.peers) {
		const jid = peer.jid
		try {
			const { type } = await repo.encryptMessage({ jid, data })
			ok(`encrypt to ${jid} with the stored session (${type})`, type === 'msg' || type === 'pkmsg')
		} catch (e) {
			ok(`encrypt to ${jid} with the stored session: ${e.message}`, false)
		}
	}
	for (const group of manifest.parties.groups) {
		const { senderKeyDistributionMessage } = await repo.encryptGroupMessage({ group, meId: manifest.parties.me.jid, data })
		ok(`encrypt to group ${group} with the stored sender key`, senderKeyDistributionMessage.length > 0)
	}
} finally {
	await rm(scratch, { recursive: true, force: true })
}

console.log(`${passes} checks passed, ${failures} failed`)
process.exit(failures ? 1 : 0)
