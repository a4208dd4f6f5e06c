// The device contract in Kotlin: no Android dependency, so it runs (and is tested) on any JVM.
// src/test holds the JVM-side programs the repository's pytest suite drives (conformance kit,
// tokenizer and noise references, a trainer command) and a test-only ONNX Runtime binding over
// its C API; they need Java 22+ and are compiled by tests/helpers/kotlin.py, not by Gradle.
plugins {
    kotlin("jvm")
    `java-library`
}

java {
    sourceCompatibility = JavaVersion.VERSION_17
    targetCompatibility = JavaVersion.VERSION_17
}

kotlin {
    jvmToolchain(17)
}

sourceSets {
    test {
        kotlin.setSrcDirs(emptyList<String>())
    }
}
