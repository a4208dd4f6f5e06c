plugins {
    id("com.android.application")
    kotlin("android")
}

android {
    namespace = "edgetune.demo"
    compileSdk = 35

    defaultConfig {
        applicationId = "edgetune.demo"
        minSdk = 26 // java.nio.file (atomic state writes)
        targetSdk = 35
        versionCode = 1
        versionName = "0.1.0"
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
    // the exported artifact ships as an asset (see README, "On Android"); programs are not compressed
    androidResources {
        noCompress += listOf("onnx", "pte", "safetensors")
    }
}

dependencies {
    implementation(project(":trainer"))
    implementation("com.microsoft.onnxruntime:onnxruntime-android:1.30.0")
    implementation("org.pytorch:executorch-android:1.4.1")
    implementation("com.facebook.soloader:soloader:0.10.5")
    implementation("com.facebook.fbjni:fbjni:0.5.1")
}
